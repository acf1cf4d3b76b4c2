// Domains: configuration sanitising, all-or-nothing creation, mappings, teardown.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "host_memory.hpp"
#include "nestor/abi/abi.h"
#include "nestor/cap/memory_region.hpp"
#include "nestor/cap/vcpu.hpp"

using namespace nestor;
using namespace nestor::cap;
using namespace nestor::cap::test;

namespace {
constexpr u64 R = NESTOR_CSPACE_ROOT;
constexpr u64 U = kBootSlotUntyped;
constexpr u64 kFree = kBootFirstFreeSlot;

DomainConfig good() {
    DomainConfig c;
    c.vcpus = 2;
    c.memory_bytes = 64u << 20;
    c.cspace_bits = 4;
    return c;
}

Error refusal(const DomainConfig& c, const PlatformCaps& p = full_platform()) {
    CapStatus s = sanitise_domain_config(c, p);
    return s ? Error::none : s.error();
}

u64 create(Booted& b, const DomainConfig& c, u64 dst, u64 untyped = U) {
    return b.call(NESTOR_HC_DOMAIN_CREATE, untyped, R, dst,
                  NESTOR_DOMAIN_CREATE_PACK(c.vcpus, c.cspace_bits, c.cpuid_policy, c.flags), c.memory_bytes);
}
}  // namespace

TEST_CASE("domain.config_accepts_a_sane_config") { CHECK(refusal(good()) == Error::none); }

TEST_CASE("domain.config_refuses_each_invalid_field") {
    DomainConfig c = good();
    c.vcpus = 0;
    CHECK(refusal(c) == Error::cfg_no_vcpus);
    c = good();
    c.vcpus = NESTOR_DOMAIN_MAX_VCPUS + 1;
    CHECK(refusal(c) == Error::cfg_too_many_vcpus);
    PlatformCaps small = full_platform();
    small.max_vcpus = 1;
    CHECK(refusal(good(), small) == Error::cfg_too_many_vcpus);
    c = good();
    c.memory_bytes = 0;
    CHECK(refusal(c) == Error::cfg_no_memory);
    c.memory_bytes = 4097;
    CHECK(refusal(c) == Error::cfg_memory_unaligned);
    c.memory_bytes = u64{1} << 41;
    CHECK(refusal(c) == Error::cfg_memory_too_large);
    c = good();
    c.flags = 1u << 5;
    CHECK(refusal(c) == Error::cfg_unknown_flags);
    c = good();
    c.cpuid_policy = NESTOR_CPUID_POLICY_COUNT;
    CHECK(refusal(c) == Error::cfg_unknown_cpuid_policy);
    c = good();
    c.cspace_bits = 0;
    CHECK(refusal(c) == Error::cfg_cspace_size);
    c.cspace_bits = kDomainMaxCSpaceBits + 1;
    CHECK(refusal(c) == Error::cfg_cspace_size);
    CHECK(refusal(good(), PlatformCaps{}) == Error::cfg_no_hvm);
}

TEST_CASE("domain.config_nested_virt_follows_the_platform") {
    DomainConfig c = good();
    c.flags = NESTOR_DOMAIN_FLAG_NESTED_VIRT;
    CHECK(refusal(c) == Error::none);
    PlatformCaps no_nested = full_platform();
    no_nested.nested_virt = false;
    CHECK(refusal(c, no_nested) == Error::cfg_nested_virt_unavailable);
    CHECK(refusal(good(), no_nested) == Error::none);
    PlatformCaps no_hap = full_platform();
    no_hap.nested_paging = false;
    CHECK(refusal(c, no_hap) == Error::cfg_nested_virt_needs_hap);
    c.cpuid_policy = NESTOR_CPUID_POLICY_MINIMAL;
    CHECK(refusal(c) == Error::cfg_nested_virt_cpuid_conflict);
}

TEST_CASE("domain.physcaps_reports_the_platform") {
    PlatformCaps p;
    CHECK(physcaps_bits(p) == 0);
    p.hvm_vmx = true;
    p.nested_virt = true;  // without nested paging, nesting is not offered
    CHECK(physcaps_bits(p) == NESTOR_PHYSCAP_HVM_VMX);
    p.nested_paging = true;
    CHECK(physcaps_bits(p) == (NESTOR_PHYSCAP_HVM_VMX | NESTOR_PHYSCAP_NESTED_PAGING | NESTOR_PHYSCAP_NESTED_VIRT));
    Booted b;
    REQUIRE(b.call(NESTOR_HC_PHYSCAPS) == NESTOR_E_OK);
    CHECK(b.result.value[0] == physcaps_bits(full_platform()));
    CHECK(b.call(NESTOR_HC_PHYSCAPS, 1) == NESTOR_E_INVALID_ARGUMENT);
    REQUIRE(b.call(NESTOR_HC_ABI_VERSION) == NESTOR_E_OK);
    CHECK(b.result.value[0] == NESTOR_ABI_VERSION);
}

TEST_CASE("domain.platform_calls_are_passed_to_the_platform") {
    Booted b;
    b.call(NESTOR_HC_CONSOLE_WRITE, 0x1000, 2);
    CHECK(b.disposition == Disposition::platform);
    b.call(NESTOR_HC_YIELD);
    CHECK(b.disposition == Disposition::platform);
    b.call(NESTOR_HC_SHUTDOWN, 3);
    CHECK(b.disposition == Disposition::platform);
    CHECK(b.call(999) == NESTOR_E_INVALID_HYPERCALL);
    CHECK(b.disposition == Disposition::done);
}

TEST_CASE("domain.platform_calls_refuse_unused_arguments") {
    Booted b;
    CHECK(b.call(NESTOR_HC_CONSOLE_WRITE, 0x1000, 2, 1) == NESTOR_E_INVALID_ARGUMENT);
    CHECK(b.call(NESTOR_HC_YIELD, 1) == NESTOR_E_INVALID_ARGUMENT);
    CHECK(b.call(NESTOR_HC_SHUTDOWN, 0, 0, 0, 0, 0, 7) == NESTOR_E_INVALID_ARGUMENT);
    CHECK(b.disposition == Disposition::done);  // refused before the platform sees it
}

TEST_CASE("domain.create_builds_everything_from_the_untyped") {
    Booted b;
    u64 used = b.untyped().used();
    u64 live = b.system.live_objects();
    REQUIRE(create(b, good(), kFree) == NESTOR_E_OK);
    auto& d = static_cast<Domain&>(*b.slot(kFree).cap.object);
    CHECK(d.vcpu_count() == 2);
    CHECK(b.system.live_objects() == live + 4);  // domain, CSpace root, 2 vCPUs
    CHECK(b.untyped().used() == used + sizeof(Domain) + CNode::footprint_for(4) + 2 * sizeof(VCpu));
    REQUIRE(b.call(NESTOR_HC_DOMAIN_VCPU, kFree, 1, R, kFree + 1) == NESTOR_E_OK);
    CHECK(static_cast<VCpu&>(*b.slot(kFree + 1).cap.object).index() == 1);
    REQUIRE(b.call(NESTOR_HC_DOMAIN_CSPACE, kFree, R, kFree + 2) == NESTOR_E_OK);
    // Give the new domain a capability through its CSpace: it lands in its slot 3.
    REQUIRE(b.call(NESTOR_HC_CAP_COPY, R, kBootSlotIoPorts, kFree + 2, 3) == NESTOR_E_OK);
    CHECK(static_cast<CNode&>(*d.cspace_root().cap.object).slot(3).cap.type == ObjectType::ioport_range);
    // The vCPU cap keeps the domain: deleting the domain cap alone destroys nothing.
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree) == NESTOR_E_OK);
    CHECK(b.system.live_objects() == live + 4);
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree + 1) == NESTOR_E_OK);
    CHECK(b.system.live_objects() == live + 1);  // only the CSpace root, held by our CNode cap
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree + 2) == NESTOR_E_OK);
    CHECK(b.system.live_objects() == live);
    CHECK(b.untyped().used() == used);
}

TEST_CASE("domain.create_is_all_or_nothing") {
    Booted b;
    REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_UNTYPED, 13, R, kFree) == NESTOR_E_OK);
    auto& small = static_cast<Untyped&>(*b.slot(kFree).cap.object);
    u64 live = b.system.live_objects();
    DomainConfig c = good();
    c.vcpus = 16;  // the domain and its CNode fit, sixteen vCPUs do not
    CHECK(create(b, c, kFree + 1, kFree) == NESTOR_E_UNTYPED_EXHAUSTED);
    CHECK(small.used() == 0);
    CHECK(small.watermark() == 0);
    CHECK(b.system.live_objects() == live);
    CHECK(b.slot(kFree + 1).empty());
    c.vcpus = 0;
    CHECK(create(b, c, kFree + 1) == NESTOR_E_CFG_NO_VCPUS);
    c = good();
    c.flags = NESTOR_DOMAIN_FLAG_NESTED_VIRT;
    c.cpuid_policy = NESTOR_CPUID_POLICY_MINIMAL;
    CHECK(create(b, c, kFree + 1) == NESTOR_E_CFG_NESTED_VIRT_CPUID_CONFLICT);
    CHECK(create(b, good(), U) == NESTOR_E_SLOT_OCCUPIED);
    CHECK(create(b, good(), kFree + 1, kBootSlotDomain) == NESTOR_E_WRONG_TYPE);
    CHECK(b.call(NESTOR_HC_DOMAIN_CREATE, U, R, kFree + 1, NESTOR_DOMAIN_CREATE_PACK(1, 4, 0, 0), 4096, 1) ==
          NESTOR_E_INVALID_ARGUMENT);
    CHECK(b.system.live_objects() == live);
}

TEST_CASE("domain.nested_virt_refused_without_platform_support") {
    PlatformCaps caps = full_platform();
    caps.nested_virt = false;
    Booted b(8u << 20, caps);
    DomainConfig c = good();
    c.flags = NESTOR_DOMAIN_FLAG_NESTED_VIRT;
    CHECK(create(b, c, kFree) == NESTOR_E_CFG_NESTED_VIRT_UNAVAILABLE);
    REQUIRE(b.call(NESTOR_HC_PHYSCAPS) == NESTOR_E_OK);
    CHECK((b.result.value[0] & NESTOR_PHYSCAP_NESTED_VIRT) == 0);
}

TEST_CASE("domain.vcpu_and_cspace_error_paths") {
    Booted b;
    REQUIRE(create(b, good(), kFree) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_DOMAIN_VCPU, kFree, 2, R, kFree + 1) == NESTOR_E_INDEX_OUT_OF_RANGE);
    CHECK(b.call(NESTOR_HC_DOMAIN_VCPU, U, 0, R, kFree + 1) == NESTOR_E_WRONG_TYPE);
    CHECK(b.call(NESTOR_HC_DOMAIN_VCPU, kFree, 0, R, kFree + 1, 1) == NESTOR_E_INVALID_ARGUMENT);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 1, NESTOR_RIGHT_DOMAIN_MAP, 0) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_DOMAIN_VCPU, kFree + 1, 0, R, kFree + 2) == NESTOR_E_INSUFFICIENT_RIGHTS);
    CHECK(b.call(NESTOR_HC_DOMAIN_CSPACE, kFree + 1, R, kFree + 2) == NESTOR_E_INSUFFICIENT_RIGHTS);
    CHECK(b.call(NESTOR_HC_DOMAIN_CSPACE, kFree, R, kFree + 1) == NESTOR_E_SLOT_OCCUPIED);
    // vCPU registers.
    REQUIRE(b.call(NESTOR_HC_DOMAIN_VCPU, kFree, 0, R, kFree + 2) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_VCPU_WRITE, kFree + 2, NESTOR_VCPU_REG_RIP, 0xfff0) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_VCPU_READ, kFree + 2, NESTOR_VCPU_REG_RIP) == NESTOR_E_OK);
    CHECK(b.result.value[0] == 0xfff0);
    CHECK(b.call(NESTOR_HC_VCPU_READ, kFree + 2, NESTOR_VCPU_REG_COUNT) == NESTOR_E_INDEX_OUT_OF_RANGE);
    CHECK(b.call(NESTOR_HC_VCPU_READ, kFree + 2, 0, 1) == NESTOR_E_INVALID_ARGUMENT);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree + 2, R, kFree + 3, NESTOR_RIGHT_VCPU_READ, 0) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_VCPU_WRITE, kFree + 3, 0, 1) == NESTOR_E_INSUFFICIENT_RIGHTS);
}

// VCPU_READ / VCPU_WRITE reach the registers the kernel runs the vCPU with, and only while it
// is stopped.
TEST_CASE("domain.vcpu_registers_are_the_running_state") {
    Booted b;
    REQUIRE(create(b, good(), kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_DOMAIN_VCPU, kFree, 0, R, kFree + 1) == NESTOR_E_OK);
    auto& vcpu = static_cast<VCpu&>(*b.slot(kFree + 1).cap.object);
    virt::VcpuState& state = vcpu.state();

    state.rip = 0x1234;
    state.reg(virt::Gpr::rsp) = 0x8000;
    state.reg(virt::Gpr::r15) = 0xfeed;
    REQUIRE(b.call(NESTOR_HC_VCPU_READ, kFree + 1, NESTOR_VCPU_REG_RIP) == NESTOR_E_OK);
    CHECK(b.result.value[0] == 0x1234);
    REQUIRE(b.call(NESTOR_HC_VCPU_READ, kFree + 1, NESTOR_VCPU_REG_RSP) == NESTOR_E_OK);
    CHECK(b.result.value[0] == 0x8000);
    REQUIRE(b.call(NESTOR_HC_VCPU_READ, kFree + 1, NESTOR_VCPU_REG_GPR0 + 15) == NESTOR_E_OK);
    CHECK(b.result.value[0] == 0xfeed);

    REQUIRE(b.call(NESTOR_HC_VCPU_WRITE, kFree + 1, NESTOR_VCPU_REG_GPR0 + 0, 0xabc) == NESTOR_E_OK);
    CHECK(state.rax() == 0xabc);
    REQUIRE(b.call(NESTOR_HC_VCPU_WRITE, kFree + 1, NESTOR_VCPU_REG_GPR0 + 4, 0x9000) == NESTOR_E_OK);
    CHECK(state.reg(virt::Gpr::rsp) == 0x9000);
    // RFLAGS keeps its reserved bits: bit 1 set, bits 3, 5, 15 and 22..63 clear.
    REQUIRE(b.call(NESTOR_HC_VCPU_WRITE, kFree + 1, NESTOR_VCPU_REG_RFLAGS, ~u64{0}) == NESTOR_E_OK);
    CHECK(state.rflags == 0x3F7FD7);
    REQUIRE(b.call(NESTOR_HC_VCPU_WRITE, kFree + 1, NESTOR_VCPU_REG_RFLAGS, 0) == NESTOR_E_OK);
    CHECK(state.rflags == virt::kRflagsFixed1);

    // A running vCPU refuses both, and nothing changes.
    vcpu.set_running(true);
    CHECK(b.call(NESTOR_HC_VCPU_READ, kFree + 1, NESTOR_VCPU_REG_RIP) == NESTOR_E_VCPU_RUNNING);
    CHECK(b.call(NESTOR_HC_VCPU_WRITE, kFree + 1, NESTOR_VCPU_REG_RIP, 0x5555) == NESTOR_E_VCPU_RUNNING);
    CHECK(state.rip == 0x1234);
    // Stopped again: reachable again.
    vcpu.set_running(false);
    REQUIRE(b.call(NESTOR_HC_VCPU_WRITE, kFree + 1, NESTOR_VCPU_REG_RIP, 0x5555) == NESTOR_E_OK);
    CHECK(state.rip == 0x5555);
}

TEST_CASE("domain.read_only_view_then_revoke") {
    // The worked example of docs/capabilities.md.
    Booted b;
    REQUIRE(create(b, good(), kFree) == NESTOR_E_OK);                                                  // the guest
    REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_MEMORY, 16, R, kFree + 1) == NESTOR_E_OK);  // 64 KiB
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree + 1, R, kFree + 2, NESTOR_RIGHT_MEMORY_READ, 0) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 2, 0x100000,
                 NESTOR_RIGHT_MEMORY_READ | NESTOR_RIGHT_MEMORY_WRITE) == NESTOR_E_INSUFFICIENT_RIGHTS);
    REQUIRE(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 2, 0x100000, NESTOR_RIGHT_MEMORY_READ) == NESTOR_E_OK);
    auto& d = static_cast<Domain&>(*b.slot(kFree).cap.object);
    auto& region = static_cast<MemoryRegion&>(*b.slot(kFree + 1).cap.object);
    CHECK(d.mapping(0).used);
    CHECK(d.mapping(0).rights == NESTOR_RIGHT_MEMORY_READ);
    CHECK(d.mapping(0).hpa == region.backing());
    CHECK(region.mappings() == 1);
    REQUIRE(b.call(NESTOR_HC_CAP_REVOKE, R, kFree + 1) == NESTOR_E_OK);
    CHECK(b.slot(kFree + 2).empty());
    CHECK(!d.mapping(0).used);
    CHECK(d.mapped_bytes() == 0);
    CHECK(region.mappings() == 0);
}

TEST_CASE("domain.map_error_paths") {
    Booted b;
    DomainConfig c = good();
    c.memory_bytes = 3 * 4096;
    REQUIRE(create(b, c, kFree) == NESTOR_E_OK);
    for (u64 i = 1; i <= 4; ++i) {
        REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_MEMORY, 12, R, kFree + i) == NESTOR_E_OK);
    }
    REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_MEMORY, 14, R, kFree + 5) == NESTOR_E_OK);
    u64 rw = NESTOR_RIGHT_MEMORY_READ | NESTOR_RIGHT_MEMORY_WRITE;
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 1, 0x1001, rw) == NESTOR_E_INVALID_GPA);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 1, ~u64{0} & ~u64{0xfff}, rw) == NESTOR_E_INVALID_GPA);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 1, u64{1} << 52, rw) == NESTOR_E_INVALID_GPA);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 1, 0, 0) == NESTOR_E_INVALID_RIGHTS);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 1, 0, 8) == NESTOR_E_INVALID_RIGHTS);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree, U, 0, rw) == NESTOR_E_WRONG_TYPE);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, U, kFree + 1, 0, rw) == NESTOR_E_WRONG_TYPE);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 1, 0, rw, 1) == NESTOR_E_INVALID_ARGUMENT);
    REQUIRE(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 1, 0, rw) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 1, 0x10000, rw) == NESTOR_E_ALREADY_MAPPED);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 2, 0, rw) == NESTOR_E_MAPPING_OVERLAP);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 5, 0x10000, rw) == NESTOR_E_MEMORY_LIMIT);
    REQUIRE(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 2, 0x1000, rw) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 3, 0x2000, rw) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 4, 0x3000, rw) == NESTOR_E_MEMORY_LIMIT);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree, R, kFree + 6, NESTOR_RIGHT_DOMAIN_CONTROL, 0) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree + 6, kFree + 4, 0x3000, rw) == NESTOR_E_INSUFFICIENT_RIGHTS);
    // Unmap, then the slot no longer backs a mapping.
    REQUIRE(b.call(NESTOR_HC_DOMAIN_UNMAP, R, kFree + 3) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_DOMAIN_UNMAP, R, kFree + 3) == NESTOR_E_NOT_MAPPED);
    CHECK(b.call(NESTOR_HC_DOMAIN_UNMAP, R, kFree) == NESTOR_E_WRONG_TYPE);
    CHECK(b.call(NESTOR_HC_DOMAIN_UNMAP, R, 40) == NESTOR_E_SLOT_EMPTY);
    // A moved capability takes its mapping along; deleting it unmaps.
    REQUIRE(b.call(NESTOR_HC_CAP_MOVE, R, kFree + 2, R, 40) == NESTOR_E_OK);
    auto& d = static_cast<Domain&>(*b.slot(kFree).cap.object);
    CHECK(d.mapped_bytes() == 2 * 4096);
    REQUIRE(b.call(NESTOR_HC_DOMAIN_UNMAP, R, 40) == NESTOR_E_OK);
    CHECK(d.mapped_bytes() == 4096);
}

TEST_CASE("domain.mapping_table_full") {
    Booted b(16u << 20);
    REQUIRE(create(b, good(), kFree) == NESTOR_E_OK);
    u64 rw = NESTOR_RIGHT_MEMORY_READ | NESTOR_RIGHT_MEMORY_WRITE;
    for (u64 i = 0; i <= Domain::kMaxMappings; ++i) {
        REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_MEMORY, 12, R, 10 + i) == NESTOR_E_OK);
        u64 status = b.call(NESTOR_HC_DOMAIN_MAP, kFree, 10 + i, i * 4096, rw);
        CHECK(status == (i < Domain::kMaxMappings ? NESTOR_E_OK : NESTOR_E_MAPPING_TABLE_FULL));
    }
}

TEST_CASE("domain.destroy_unmaps_and_returns_memory") {
    Booted b;
    u64 used = b.untyped().used();
    u64 live = b.system.live_objects();
    REQUIRE(create(b, good(), kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_MEMORY, 12, R, kFree + 1) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 1, 0, NESTOR_RIGHT_MEMORY_READ) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree) == NESTOR_E_OK);
    CHECK(b.slot(kFree + 1).cap.mapped_in == nullptr);
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree + 1) == NESTOR_E_OK);
    CHECK(b.system.live_objects() == live);
    CHECK(b.untyped().used() == used);
}

TEST_CASE("domain.revoking_the_callers_own_untyped_destroys_the_caller") {
    Booted b;
    REQUIRE(b.call(NESTOR_HC_CAP_REVOKE, R, U) == NESTOR_E_OK);
    CHECK(b.disposition == Disposition::caller_destroyed);
    CHECK(b.system.live_objects() == 0);  // even the boot untyped: its cap lived in the root CNode
}

namespace {
// Records what the runtime tells the kernel about a domain's guest-physical space.
struct RecordingObserver final : DomainObserver {
    std::vector<std::string> events;
    void mapped(Domain&, const Mapping& m) override { events.push_back("map " + std::to_string(m.gpa)); }
    void unmapped(Domain&, const Mapping& m) override { events.push_back("unmap " + std::to_string(m.gpa)); }
    void destroyed(Domain&) override { events.push_back("destroyed"); }
};
}  // namespace

TEST_CASE("domain.observer_hears_every_mapping_change_and_the_destruction") {
    Booted b;
    RecordingObserver observer;
    b.system.set_observer(&observer);
    REQUIRE(create(b, good(), kFree) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_UNTYPED_RETYPE, U, NESTOR_CAP_MEMORY, 16, R, kFree + 1) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_MINT, R, kFree + 1, R, kFree + 2, NESTOR_RIGHT_MEMORY_READ, 0) == NESTOR_E_OK);
    CHECK(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 2, 0x100000, NESTOR_RIGHT_MEMORY_WRITE) ==
          NESTOR_E_INSUFFICIENT_RIGHTS);
    CHECK(observer.events.empty());  // a refused map is never seen
    REQUIRE(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 2, 0x100000, NESTOR_RIGHT_MEMORY_READ) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_REVOKE, R, kFree + 1) == NESTOR_E_OK);  // takes the read-only child
    REQUIRE(b.call(NESTOR_HC_DOMAIN_MAP, kFree, kFree + 1, 0x200000, NESTOR_RIGHT_MEMORY_READ) == NESTOR_E_OK);
    REQUIRE(b.call(NESTOR_HC_CAP_DELETE, R, kFree) == NESTOR_E_OK);  // the domain's last capability
    CHECK(observer.events ==
          std::vector<std::string>{"map 1048576", "unmap 1048576", "map 2097152", "destroyed", "unmap 2097152"});
    b.system.set_observer(nullptr);
}
