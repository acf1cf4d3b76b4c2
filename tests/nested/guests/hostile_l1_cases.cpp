// A hostile L1 hypervisor: it hands Nestor's nested SVM what a buggy or malicious L1 could, one
// case per domain, picked by the command line (tests/boot/nested_hostile.cmake). Each case
// prints what the L1 saw; the kernel must refuse or contain it and never crash, and the healthy
// domain beside it must finish.
//   case=vmcb12    VMRUN of a vmcb12 outside its memory or over an unbacked (MMIO) address: #GP
//   case=hsave     VM_HSAVE_PA outside its memory or unaligned: #GP on the WRMSR
//   case=maps      MSRPM / IOPM outside its memory: VMEXIT_INVALID
//   case=npt_leaf_outside, npt_leaf_mmio, npt_table_outside: L1's NPT sends L2 (or its own walk)
//                  outside L1's memory: the domain is stopped
//   case=npt_reserved  an NPT leaf with reserved address bits: #NPF to L1 with RSVD
//   case=features  AVIC, x2AVIC, vGIF, vNMI, LBR virtualization, virtual VMLOAD/VMSAVE, SEV
//                  asked for in vmcb12: ignored, L2 runs as without them
//   case=corrupt   random bytes in vmcb12's control area: VMEXIT_INVALID or a sane L2 run
//   case=fuzz      seed=N iterations=N: random vmcb12s (control area and save-area fields) and
//                  random VMRUN/VMLOAD/VMSAVE/INVLPGA/CLGI/STGI: an exit L1 asked for, VMEXIT_INVALID
//                  or an exception, never anything else (tests/boot/fuzz.cmake)
//   case=spin      L2 loops for ever: the watchdog stops the domain
//   case=triple    L2 triple-faults, which L1 does not intercept: the domain is stopped
//   case=exitport  L2 writes the exit port, which L1 lets it reach: the domain ends
#include "nestor/arch/apic_regs.hpp"
#include "npt_common.hpp"

using namespace npt_test;

namespace {

constexpr u64 kMagic = 0x686f7374696c6521;
constexpr u64 kMemoryEnd = 0x1000000;                  // the manifest gives every hostile L1 16 MiB
constexpr u64 kLapic = nestor::apic_regs::kXapicBase;  // nothing of the domain's

alignas(4096) u8 msrpm[svm::kMsrpmBytes];
alignas(4096) u8 iopm[svm::kIopmBytes];
alignas(16) u8 flat_stack[4096];

// The standard L2 of npt_common.hpp, reading kMagic through L1's NPT.
void set_up_l2(const char* routine) {
    u64 data = take_frame();
    *table(data) = kMagic;
    set_up_npt(data);
    set_up_vmcb(routine);
}

// L2 with L1's own paging and no nested paging of L1's: L2-physical is L1-physical.
void set_up_flat_vmcb(const char* routine) {
    set_up_vmcb(routine);
    vmcb.control.nested_control = 0;
    vmcb.control.nested_cr3 = 0;
    vmcb.save.cr3 = read_cr3();
    vmcb.save.rip = reinterpret_cast<u64>(routine);
    vmcb.save.rsp = reinterpret_cast<u64>(flat_stack + sizeof(flat_stack));
}

// The run every case that must leave the L1 working ends with: L2 reads kMagic through L1's NPT.
void expect_healthy_l2() {
    set_up_vmcb(npt_l2_read_data);
    expect_exit(svm::exit_code::cpuid);
    println("L2 exit 0x72 cpuid: rax ", hex(vmcb.save.rax, 1), vmcb.save.rax == kMagic ? "" : " (WRONG)");
    if (vmcb.save.rax != kMagic) exit(1);
}

const char* outcome(const ExceptionRecord& e) { return e.raised ? exception_name(e.vector) : "no exception"; }

int vmcb12() {
    set_up_l2(npt_l2_read_data);
    const u64 addresses[] = {kMemoryEnd, kLapic, 0xFFFFF000, 0x7FFFFFF000};
    for (u64 address : addresses) {
        ExceptionRecord e = try_run([&] { svm::vmrun(address); });
        println("vmrun with vmcb12 at ", hex(address, 1), ": ", outcome(e));
    }
    expect_healthy_l2();
    return 0;
}

int hsave() {
    // The last one is its last page: accepted.
    const u64 addresses[] = {kMemoryEnd, kLapic, kMemoryEnd - kPage + 8, 0x7FFFFFF000, kMemoryEnd - kPage};
    for (u64 address : addresses) {
        ExceptionRecord e = try_run([&] { wrmsr(svm::kMsrVmHsavePa, address); });
        println("wrmsr VM_HSAVE_PA ", hex(address, 1), ": ", outcome(e));
    }
    println("rdmsr VM_HSAVE_PA: ", hex(rdmsr(svm::kMsrVmHsavePa), 1));
    set_up_l2(npt_l2_read_data);
    expect_healthy_l2();
    return 0;
}

// A map L1 asks to be used (its intercept bit) at `address`: VMRUN's answer.
void try_map(const char* which, u32 intercept, u64 svm::VmcbControl::* field, u64 address) {
    set_up_vmcb(npt_l2_read_data);
    vmcb.control.intercept_misc1 |= intercept;
    vmcb.control.iopm_base_pa = reinterpret_cast<u64>(iopm);
    vmcb.control.msrpm_base_pa = reinterpret_cast<u64>(msrpm);
    vmcb.control.*field = address;
    u64 code = run_l2();
    println(which, " at ", hex(address, 1), ": exit code ", static_cast<i64>(code));
}

int maps() {
    set_up_l2(npt_l2_read_data);
    using C = svm::VmcbControl;
    try_map("MSRPM", svm::intercept1::msr_prot, &C::msrpm_base_pa, kMemoryEnd);
    try_map("MSRPM", svm::intercept1::msr_prot, &C::msrpm_base_pa, kMemoryEnd - kPage);  // its 2nd page beyond
    try_map("MSRPM", svm::intercept1::msr_prot, &C::msrpm_base_pa, kLapic);
    try_map("IOPM", svm::intercept1::ioio_prot, &C::iopm_base_pa, kMemoryEnd);
    try_map("IOPM", svm::intercept1::ioio_prot, &C::iopm_base_pa, kMemoryEnd - 2 * kPage);  // its 3rd page beyond
    try_map("IOPM", svm::intercept1::ioio_prot, &C::iopm_base_pa, kLapic);
    // The same maps inside its memory: VMRUN enters L2.
    set_up_vmcb(npt_l2_read_data);
    vmcb.control.intercept_misc1 |= svm::intercept1::msr_prot | svm::intercept1::ioio_prot;
    vmcb.control.iopm_base_pa = reinterpret_cast<u64>(iopm);
    vmcb.control.msrpm_base_pa = reinterpret_cast<u64>(msrpm);
    expect_exit(svm::exit_code::cpuid);
    println("MSRPM and IOPM inside its memory: L2 exit 0x72 cpuid, rax ", hex(vmcb.save.rax, 1));
    return 0;
}

// L1's NPT sends L2's data page somewhere that is not L1 RAM: L2's read must never reach it.
int npt_leaf(u64 target, const char* what) {
    set_up_l2(npt_l2_read_data);
    npt_map(kL2Data, target);
    println("L1's NPT maps L2-physical ", hex(kL2Data, 1), " to ", what, " ", hex(target, 1), ", L2 reads it");
    u64 code = run_l2();
    println("L1 resumed: exit ", hex(code, 1), " rax ", hex(vmcb.save.rax, 1));
    return 1;
}

// L1's NPT root holds a table pointer outside L1's memory: the walk of L2's first fetch.
int npt_table_outside() {
    set_up_l2(npt_l2_read_data);
    table(npt_root)[svm::npt::index(kL2Base, 4)] = kMemoryEnd | svm::npt::present | svm::npt::writable | svm::npt::user;
    println("L1's NPT root points at a table at ", hex(kMemoryEnd, 1), ", L2 starts");
    u64 code = run_l2();
    println("L1 resumed: exit ", hex(code, 1));
    return 1;
}

int npt_reserved() {
    set_up_l2(npt_l2_read_data);
    constexpr u64 kReservedBit = u64{1} << 51;  // above the 48 physical address bits Nestor offers
    u64 frame = take_frame();
    *table(frame) = kMagic;
    npt_map(kL2Data, frame | kReservedBit);
    println("L1's NPT entry for ", hex(kL2Data, 1), " has address bit 51 set, L2 reads it");
    expect_exit(svm::exit_code::npf);
    print_npf();
    npt_map(kL2Data, frame);
    println("L1 clears the bit and resumes L2");
    expect_exit(svm::exit_code::cpuid);
    println("L2 exit 0x72 cpuid: rax ", hex(vmcb.save.rax, 1));
    return vmcb.save.rax == kMagic ? 0 : 1;
}

int features() {
    CpuidResult r = cpuid(0x8000000A);
    println("cpuid 8000000a: edx ", hex(r.edx, 1), " (avic ", (r.edx >> 13) & 1, ", vgif ", (r.edx >> 16) & 1,
            ", x2avic ", (r.edx >> 18) & 1, ", vnmi ", (r.edx >> 25) & 1, ", virtual vmload/vmsave ", (r.edx >> 15) & 1,
            ", lbr virtualization ", (r.edx >> 1) & 1, ")");
    set_up_l2(npt_l2_read_data);
    svm::VmcbControl& c = vmcb.control;
    constexpr u32 kAvic = 1u << 31, kX2avic = 1u << 30, kVnmiEnable = 1u << 26, kVgifEnable = 1u << 25;
    constexpr u32 kVgif = 1u << 9, kVnmi = 1u << 11;
    c.int_ctl |= kAvic | kX2avic | kVnmiEnable | kVgifEnable | kVgif | kVnmi;
    c.virt_ext = 3;                                         // LBR virtualization, virtual VMLOAD/VMSAVE
    c.nested_control |= (1u << 1) | (1u << 2) | (1u << 3);  // SEV, SEV-ES, guest-mode execute trap
    c.avic_apic_bar = kLapic;                               // AVIC's tables over host memory, if anything took them
    c.avic_backing_page = 0x100000;
    c.avic_logical_table = 0x200000;
    c.avic_physical_table = 0x0;
    c.vmsa_pa = 0x0;
    c.ghcb_pa = 0x100000;
    println("vmcb12: int_ctl ", hex(c.int_ctl, 1), ", virt_ext ", hex(c.virt_ext, 1), ", nested_control ",
            hex(c.nested_control, 1));
    expect_exit(svm::exit_code::cpuid);
    println("L2 exit 0x72 cpuid: rax ", hex(vmcb.save.rax, 1), vmcb.save.rax == kMagic ? "" : " (WRONG)");
    step_over();
    expect_exit(svm::exit_code::hlt);
    println("L2 exit 0x78 hlt");
    return vmcb.save.rax == kMagic ? 0 : 1;
}

// --- corrupt: random control areas ----------------------------------------------------------

u64 random_state = 0x6e6573746f722121;
u64 random_u64() {  // xorshift64*: the same sequence every run
    random_state ^= random_state >> 12;
    random_state ^= random_state << 25;
    random_state ^= random_state >> 27;
    return random_state * 0x2545F4914F6CDD1D;
}

void randomise_control_area() {
    auto* bytes = reinterpret_cast<u8*>(&vmcb.control);
    for (u64 i = 0; i < sizeof(svm::VmcbControl); i += 8) {
        u64 r = random_u64();
        for (u64 j = 0; j < 8 && i + j < sizeof(svm::VmcbControl); ++j) bytes[i + j] = static_cast<u8>(r >> (8 * j));
    }
    // What L1 needs to see the end of every L2 run: CPUID, HLT and a triple fault come back to it.
    vmcb.control.intercept_misc1 |= svm::intercept1::cpuid | svm::intercept1::hlt | kInterceptShutdown;
}

// Whether L1's intercepts in `c` ask for exit `code` (what an L2 exit must always be).
bool asked_for(const svm::VmcbControl& c, u64 code) {
    auto bit = [](u32 vector, u64 n) { return ((vector >> n) & 1) != 0; };
    if (code < 0x20) return bit(c.intercept_cr, code);  // reads 0-15, writes 16-31
    if (code < 0x40) return bit(c.intercept_dr, code - 0x20);
    if (code < 0x60) return bit(c.intercept_exceptions, code - 0x40);
    if (code < 0x80) return bit(c.intercept_misc1, code - 0x60);
    if (code < 0xA0) return bit(c.intercept_misc2, code - 0x80);
    if (code < 0xC0) return bit(c.intercept_misc3, code - 0xA0);
    return code == svm::exit_code::npf && (c.nested_control & svm::kNestedPagingEnable);
}

int corrupt() {
    set_up_l2(npt_l2_cpuid_hlt);
    for (u64 i = 0; i < sizeof(iopm); ++i) iopm[i] = 0xFF;
    for (u64 i = 0; i < sizeof(msrpm); ++i) msrpm[i] = 0xFF;
    constexpr u32 kRuns = 64;
    u32 random_runs = 0, invalid = 0, asked = 0, unexpected = 0, valid_runs = 0, ran = 0;
    for (u32 run = 0; run < kRuns; ++run) {
        // Every fourth run: everything random, L2 on L1's own tables (so that it still runs when
        // the random bits leave nested paging off). The others: random, then the fields VMRUN
        // checks made valid, with L1's nested paging (or, every fourth, without).
        bool all_random = run % 4 == 0;
        bool nested_paging = run % 2 == 1;
        if (nested_paging)
            set_up_vmcb(npt_l2_cpuid_hlt);
        else
            set_up_flat_vmcb(npt_l2_cpuid_hlt);
        randomise_control_area();
        svm::VmcbControl& c = vmcb.control;
        if (!all_random) {
            c.intercept_misc2 |= svm::intercept2::vmrun;
            if (c.guest_asid == 0) c.guest_asid = kAsid;
            c.iopm_base_pa = reinterpret_cast<u64>(iopm);
            c.msrpm_base_pa = reinterpret_cast<u64>(msrpm);
            c.event_inject = 0;
            c.nested_control &= ~svm::kNestedPagingEnable;
            if (nested_paging) {
                c.nested_control |= svm::kNestedPagingEnable;
                c.nested_cr3 = npt_root;
            }
        }
        const svm::VmcbControl asked_control = c;
        u64 code = run_l2();
        if (all_random) {
            ++random_runs;
            if (code == svm::exit_code::invalid)
                ++invalid;
            else if (asked_for(asked_control, code))
                ++asked;
            else {
                ++unexpected;
                println("corrupt run ", run, ": L2 exit ", hex(code, 1), " L1 did not ask for");
            }
            continue;
        }
        ++valid_runs;
        bool sane = code == svm::exit_code::cpuid;
        if (sane) {
            step_over();
            code = run_l2();
            sane = code == svm::exit_code::hlt;
        }
        if (sane)
            ++ran;
        else {
            ++unexpected;
            println("corrupt run ", run, ": exit ", hex(code, 1), " exitinfo1 ", hex(vmcb.control.exit_info_1, 1),
                    " exitinfo2 ", hex(vmcb.control.exit_info_2, 1));
        }
    }
    println("corrupt: ", random_runs, " random control areas: ", invalid, " VMEXIT_INVALID, ", asked,
            " L2 exits L1 asked for");
    println("corrupt: ", valid_runs, " random control areas with the checked fields valid: ", ran,
            " ran L2 to its CPUID and HLT exits");
    println("corrupt: ", unexpected, " unexpected");
    expect_healthy_l2();
    return unexpected == 0 ? 0 : 1;
}

// --- fuzz: random vmcb12s and random sequences of SVM instructions -------------------------

// A number from the command line ("key=N"), or `fallback`.
u64 number_option(const char* key, u64 fallback) {
    char text[24];
    const char* v = boot_info().cmdline_value(key, text, sizeof(text));
    if (!v || !*v) return fallback;
    u64 value = 0;
    for (; *v >= '0' && *v <= '9'; ++v) value = value * 10 + static_cast<u64>(*v - '0');
    return value;
}

u64 random_below(u64 n) { return random_u64() % n; }

// The save-area fields a mutation may hit: everything VMRUN checks or loads but RIP and RSP, so
// that L2 stays in its code page unless a fault or a mode change takes it elsewhere, and CR3
// without L1's nested paging (a walk of L1-physical memory past its end stops the domain, as
// nested.hostile_* shows; through L1's NPT it is L1's #NPF).
void mutate_save_area(bool nested_paging) {
    svm::VmcbSave& s = vmcb.save;
    u64* const fields[] = {&s.efer,
                           &s.cr4,
                           &s.cr0,
                           &s.dr7,
                           &s.dr6,
                           &s.rflags,
                           &s.star,
                           &s.lstar,
                           &s.cstar,
                           &s.g_pat,
                           &s.dbgctl,
                           &s.sysenter_cs,
                           &s.cr2,
                           &s.s_cet,
                           &s.ssp,
                           &s.rax,
                           &s.sfmask,
                           &s.kernel_gs_base,
                           nested_paging ? &s.cr3 : &s.cr2};
    for (u64 n = random_below(4); n > 0; --n) {
        if (random_below(3) == 0) {  // a segment's selector, attributes, limit or base, or the CPL
            auto* bytes = reinterpret_cast<u8*>(&s.es);
            bytes[random_below(0x4CC - 0x400)] = static_cast<u8>(random_u64());
            continue;
        }
        u64& field = *fields[random_below(sizeof(fields) / sizeof(fields[0]))];
        switch (random_below(3)) {
        case 0: field = random_u64(); break;
        case 1: field ^= u64{1} << random_below(64); break;
        default: field = 0; break;
        }
    }
}

// An address for VMRUN, VMLOAD or VMSAVE: its own VMCB, another page of its memory, or one that
// is not (unaligned, past its memory, the local APIC, far above, non-canonical).
u64 random_vmcb_address() {
    const u64 addresses[] = {reinterpret_cast<u64>(&vmcb),
                             reinterpret_cast<u64>(host_save_area),
                             reinterpret_cast<u64>(msrpm),
                             reinterpret_cast<u64>(&vmcb) + 8,
                             kMemoryEnd,
                             kMemoryEnd - kPage,
                             kLapic,
                             0,
                             0x7FFFFFF000,
                             u64{1} << 63};
    return random_below(8) == 0 ? random_u64() : addresses[random_below(sizeof(addresses) / sizeof(addresses[0]))];
}

// case=fuzz seed=N iterations=N: each iteration is one of: VMRUN of a vmcb12 with a random control
// area (a quarter fully random, the rest with the fields VMRUN checks valid) and up to three
// mutated save-area fields, then up to four more runs stepping over its CPUID exits; VMRUN,
// VMLOAD or VMSAVE of a random address; INVLPGA of a random address and ASID; CLGI or STGI.
// Every exit must be VMEXIT_INVALID or one L1 asked for; every instruction either works or
// raises an exception L1 survives.
int fuzz() {
    random_state = number_option("seed", 1) * 0x9E3779B97F4A7C15 + 1;
    const u64 iterations = number_option("iterations", 200);
    for (u64 i = 0; i < sizeof(iopm); ++i) iopm[i] = 0xFF;
    for (u64 i = 0; i < sizeof(msrpm); ++i) msrpm[i] = 0xFF;
    set_up_l2(npt_l2_cpuid_hlt);
    u64 runs = 0, invalid = 0, exits = 0, unexpected = 0, instructions = 0, exceptions = 0;
    for (u64 n = 0; n < iterations; ++n) {
        const u64 what = random_below(8);
        if (what < 4) {
            const bool nested_paging = random_below(2) == 0;
            if (nested_paging)
                set_up_vmcb(npt_l2_cpuid_hlt);
            else
                set_up_flat_vmcb(npt_l2_cpuid_hlt);
            randomise_control_area();
            svm::VmcbControl& c = vmcb.control;
            if (what != 0) {
                c.intercept_misc2 |= svm::intercept2::vmrun;
                if (c.guest_asid == 0) c.guest_asid = kAsid;
                c.iopm_base_pa = reinterpret_cast<u64>(iopm);
                c.msrpm_base_pa = reinterpret_cast<u64>(msrpm);
                c.nested_control &= ~svm::kNestedPagingEnable;
                if (nested_paging) {
                    c.nested_control |= svm::kNestedPagingEnable;
                    c.nested_cr3 = npt_root;
                }
            }
            mutate_save_area(nested_paging);
            const svm::VmcbControl asked = c;
            for (u32 run = 0; run < 5; ++run) {
                ++runs;
                u64 code = 0;
                ExceptionRecord e = try_run([&] { code = run_l2(); });
                if (e.raised) {
                    ++exceptions;
                    break;
                }
                if (code == svm::exit_code::invalid) {
                    ++invalid;
                    break;
                }
                if (!asked_for(asked, code) && code != kExitShutdown) {
                    ++unexpected;
                    println("fuzz ", n, ": L2 exit ", hex(code, 1), " L1 did not ask for");
                    break;
                }
                ++exits;
                if (code != svm::exit_code::cpuid) break;
                step_over();
            }
            svm::stgi();
            continue;
        }
        ++instructions;
        ExceptionRecord e;
        switch (what) {
        case 4: {
            const u64 address = random_vmcb_address();
            const u64 which = random_below(3);
            e = try_run([&] {
                if (which == 0)
                    svm::vmrun(address);
                else if (which == 1)
                    svm::vmload(address);
                else
                    svm::vmsave(address);
            });
            break;
        }
        case 5: {
            const u64 address = random_below(2) ? kL2Data + (random_u64() & 0xFFF000) : random_u64();
            const u32 asid = random_below(2) ? kAsid : static_cast<u32>(random_u64());
            e = try_run([&] { asm volatile("invlpga" ::"a"(address), "c"(asid) : "memory"); });
            break;
        }
        case 6: e = try_run([] { svm::clgi(); }); break;
        default: e = try_run([] { svm::stgi(); }); break;
        }
        if (e.raised) ++exceptions;
    }
    svm::stgi();
    println("fuzz: ", iterations, " iterations: ", runs, " VMRUNs of random vmcb12s (", invalid, " VMEXIT_INVALID, ",
            exits, " L2 exits L1 asked for), ", instructions, " other SVM instructions, ", exceptions, " exceptions, ",
            unexpected, " unexpected");
    expect_healthy_l2();
    return unexpected == 0 ? 0 : 1;
}

// --- the domain ends while L2 runs ----------------------------------------------------------

int spin() {
    set_up_l2(npt_l2_spin);
    println("spin: L2 loops at L2 rip ", hex(vmcb.save.rip, 1), " with no exit L1 intercepts");
    u64 code = run_l2();
    println("spin: L2 came back with exit ", hex(code, 1));
    return 1;
}

int triple() {
    set_up_l2(npt_l2_triple_fault);
    vmcb.control.intercept_exceptions = 0;
    vmcb.control.intercept_misc1 &= ~kInterceptShutdown;
    println("triple: L2 runs ud2 with no IDT, L1 intercepts neither the faults nor shutdown");
    u64 code = run_l2();
    println("triple: L2 came back with exit ", hex(code, 1));
    return 1;
}

int exit_port() {
    set_up_l2(npt_l2_exit_port);
    println("exitport: L2 writes 0x2a to port 0xf4, which L1 does not intercept");
    u64 code = run_l2();
    println("exitport: L2 came back with exit ", hex(code, 1));
    return 1;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot* boot) {
    char which[24];
    const char* c = boot->cmdline_value("case", which, sizeof(which));
    if (!c) {
        println("hostile_l1: no case= on the command line");
        return 1;
    }
    enable_svm();
    int status = 1;
    if (string_equal(c, "vmcb12"))
        status = vmcb12();
    else if (string_equal(c, "hsave"))
        status = hsave();
    else if (string_equal(c, "maps"))
        status = maps();
    else if (string_equal(c, "npt_leaf_outside"))
        status = npt_leaf(kMemoryEnd, "L1-physical");
    else if (string_equal(c, "npt_leaf_mmio"))
        status = npt_leaf(kLapic, "the local APIC's address");
    else if (string_equal(c, "npt_table_outside"))
        status = npt_table_outside();
    else if (string_equal(c, "npt_reserved"))
        status = npt_reserved();
    else if (string_equal(c, "features"))
        status = features();
    else if (string_equal(c, "corrupt"))
        status = corrupt();
    else if (string_equal(c, "fuzz"))
        status = fuzz();
    else if (string_equal(c, "spin"))
        status = spin();
    else if (string_equal(c, "triple"))
        status = triple();
    else if (string_equal(c, "exitport"))
        status = exit_port();
    else
        println("hostile_l1: unknown case ", c);
    if (status == 0) println("hostile_l1 ", c, ": L1 lives on");
    return status;
}
