#include "vmx_msr_lists.hpp"

#include "nestor/arch/vmx_vmcs.hpp"
#include "vmx_capabilities.hpp"

namespace nestor::nested::vmx {
namespace {

using namespace intel_vmx;
using namespace x86_regs;
using x86::vmx::Level;
using x86::vmx::NestedHardware;

struct MsrEntry {
    u32 index;
    u32 reserved;
    u64 value;
};
static_assert(sizeof(MsrEntry) == msr_entry::bytes);

bool x2apic(u32 index) { return index >= kMsrX2apicFirst && index <= kMsrX2apicLast; }

// SDM 26.4 and 27.6: what no MSR-load entry may name.
bool load_forbidden(const MsrEntry& e) {
    return e.reserved || x2apic(e.index) || e.index == kMsrFsBase || e.index == kMsrGsBase ||
           e.index == kMsrSmmMonitorCtl || e.index == kMsrSmbase;
}

// SDM 27.4: what no MSR-store entry may name.
bool store_forbidden(const MsrEntry& e) { return e.reserved || x2apic(e.index) || e.index == kMsrSmbase; }

bool read_entry(Host& host, u64 list, u32 i, MsrEntry& e) {
    return host.read(list + u64{i} * msr_entry::bytes, &e, sizeof(e));
}

u32 count_of(const Vmcs12& v, u32 count_field) { return static_cast<u32>(read_field(v, count_field)); }

// EFER as the level's WRMSR would write it (virt::efer_after_write): L2's is vmcs02's field, which
// the entry then loads; L1's the kernel's state of L1, which L1's next entry loads.
bool load_efer(NestedHardware& hw, Level level, virt::VcpuState* l1, u64 value) {
    u64 efer = 0;
    if (level == Level::l1) return l1 && virt::efer_after_write(l1->efer, l1->cr0, value, l1->efer);
    if (!virt::efer_after_write(hw.read(Level::l2, field::guest_efer), hw.read(Level::l2, field::guest_cr0), value,
                                efer))
        return false;
    hw.write(Level::l2, field::guest_efer, efer);
    return hw.write_ok();
}

// The vCPU's own MSRs (the backend's), else a device's: those are the vCPU's for both levels, as a
// CPU's MTRRs or TSC are (an entry's load reaches what L1 reads too).
bool load_msr(NestedHardware& hw, NestedVcpu& vcpu, Level level, virt::VcpuState* l1, const MsrEntry& e) {
    if (e.index == kMsrEfer) return load_efer(hw, level, l1, e.value);
    return hw.write_msr(level, e.index, e.value) || vcpu.host->device_msr_write(vcpu, e.index, e.value);
}

// 0 when every entry of the list at `address_field` loaded into `level`'s MSRs, else the failing
// entry's number from 1. `l1`: L1's state, for a list loaded into L1.
u32 load_list(const Vmcs12& v, NestedHardware& hw, NestedVcpu& vcpu, u32 count_field, u32 address_field, Level level,
              virt::VcpuState* l1) {
    Host& host = *vcpu.host;
    u32 count = count_of(v, count_field), limit = msr_list_limit();
    u64 list = read_field(v, address_field);
    for (u32 i = 0; i < count; ++i) {
        MsrEntry e{};
        if (i >= limit || !read_entry(host, list, i, e) || load_forbidden(e) || !load_msr(hw, vcpu, level, l1, e))
            return i + 1;
    }
    return 0;
}

// L2's MSR as its RDMSR would read it: EFER from vmcs02 (which the exit saved), the others from
// the vCPU, or the device that serves it.
bool store_msr(NestedHardware& hw, NestedVcpu& vcpu, u32 index, u64& value) {
    if (index == kMsrEfer) {
        value = hw.read(Level::l2, field::guest_efer);
        return true;
    }
    return hw.read_msr(Level::l2, index, value) || vcpu.host->device_msr_read(vcpu, index, value);
}

}  // namespace

u32 msr_list_limit() {
    u64 scale = (capabilities().misc >> misc::msr_list_scale_shift) & misc::msr_list_scale_mask;
    return misc::msr_list_entries_unit * static_cast<u32>(scale + 1);
}

u32 load_entry_msrs(const Vmcs12& v, NestedHardware& hw, NestedVcpu& vcpu) {
    return load_list(v, hw, vcpu, field::entry_msr_load_count, field::entry_msr_load_address, Level::l2, nullptr);
}

bool store_exit_msrs(const Vmcs12& v, NestedHardware& hw, NestedVcpu& vcpu) {
    Host& host = *vcpu.host;
    u32 count = count_of(v, field::exit_msr_store_count);
    if (count > msr_list_limit()) return false;
    u64 list = read_field(v, field::exit_msr_store_address);
    for (u32 i = 0; i < count; ++i) {
        MsrEntry e{};
        u64 value = 0;
        if (!read_entry(host, list, i, e) || store_forbidden(e) || !store_msr(hw, vcpu, e.index, value)) return false;
        if (!host.write(list + u64{i} * msr_entry::bytes + msr_entry::data_offset, &value, sizeof(value))) return false;
    }
    return true;
}

bool load_exit_msrs(const Vmcs12& v, NestedHardware& hw, NestedVcpu& vcpu, virt::VcpuState& l1) {
    return load_list(v, hw, vcpu, field::exit_msr_load_count, field::exit_msr_load_address, Level::l1, &l1) == 0;
}

}  // namespace nestor::nested::vmx
