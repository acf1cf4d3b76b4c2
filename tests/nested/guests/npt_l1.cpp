// An L1 hypervisor that runs its L2 under its own nested paging (npt_common.hpp): L2's memory is
// shown to it at L2-physical 0x40000000 by L1's NPT, which Nestor composes with its own mapping of
// L1 (the shadow NPT). The command line picks the case (tests/boot/nested_npt.cmake):
//   case=translate  L2 reads a page through L1's NPT; the CPU marks L1's entry accessed
//   case=npf        accesses L1's NPT does not map reach L1 as #NPF (a read, a walk of L2's own
//                   page table, a fetch); L1 maps each and L2 goes on
//   case=remap      L1 points L2's page at other frames, flushing with TLB_CONTROL, then INVLPGA
//   case=readonly   a write to a page L1 maps read-only is L1's #NPF; L1 allows it, L2 goes on
//   case=budget     L2 touches 768 2 MiB regions, more than the 512 shadow tables Nestor spends
//                   on one vCPU: the shadow starts over under L2, which never notices
//   case=event      the event L1 injects into L2 faults on L2's IDT, which L1's NPT does not map:
//                   L1 gets #NPF with the event in EXITINTINFO, maps the IDT and injects it
//                   again; its further faults (GDT, stack), fixed up by Nestor alone, must not
//                   lose it: L2's handler runs
//   case=nx         L1 (EFER.NXE on) maps L2's code no-execute, L2 runs without NXE: a fetch
//                   is L1's #NPF, a rights fault (bit 63 of L1's entries is L1's to define)
//   case=invlpga    (with case=marker in another domain) L2 builds shadow tables for 64 regions
//                   and its data page, runs INVLPGA, which L1 does not intercept, then reads the
//                   data page for seconds across L0's preemptions: always L1's value, never the
//                   other domain's marker (the freed shadow tables must not stay under L2)
//   case=marker     L2's data page (same L2-physical address) holds a marker; L2 runs again and
//                   again on a shadow started over, in the first frames the kernel has free
#include "npt_common.hpp"

using namespace npt_test;

namespace {

constexpr u64 kMagicData = 0x4c322d6461746121;     // in the frame mapped at kL2Data
constexpr u64 kMagicLateMap = 0x6c6174652d6d6170;  // in the frame L1 maps on the #NPF
constexpr u64 kMagicRemapFlush = 0x72656d6170746c62;
constexpr u64 kMagicRemapInvlpga = 0x696e766c70676121;
constexpr u64 kMagicReadOnly = 0x726561642d6f6e6c;
constexpr u64 kL2Wrote = 0x57726974;  // what npt_l2_read_only writes

u64 frame_with(u64 value) {
    u64 f = take_frame();
    *table(f) = value;
    return f;
}

// CPUID exits carry in RAX what L2 read just before.
void expect_read(u64 l2_address, u64 expected) {
    expect_exit(svm::exit_code::cpuid);
    u64 got = vmcb.save.rax;
    println("L2 exit 0x72 cpuid: rax ", hex(got, 1), " read from L2 address ", hex(l2_address, 1),
            got == expected ? "" : " (WRONG)");
    if (got != expected) exit(1);
    step_over();
}

void print_npt_bits(u64 l2_physical) {
    u64 e = *npt_leaf(l2_physical);
    println("L1's NPT entry for ", hex(l2_physical, 1), ": accessed ", (e & svm::npt::accessed) ? 1 : 0, " dirty ",
            (e & svm::npt::dirty) ? 1 : 0);
}

// A 2 MiB page of L1's own memory, above its image (which ends below 2 MiB) and below its 16 MiB.
constexpr u64 kL1Large = 0x600000;
constexpr u64 kMagicLarge = 0x6c617267652d3221;
constexpr u64 kMagicHuge = 0x6875676521314721;

int translate() {
    u64 data = frame_with(kMagicData);
    L2Tables tables = set_up_npt(data);
    // A large leaf in L1's NPT: the shadow maps only the 4 KiB piece L2 touches.
    npt_map_large(kL2Large, kL1Large);
    *reinterpret_cast<u64*>(kL1Large + (kL2LargeRead - kL2Large)) = kMagicLarge;
    set_up_vmcb(npt_l2_translate);
    println("translate: L2-physical ", hex(kL2Data, 1), " is L1-physical ", hex(data, 1), " in L1's NPT");
    expect_read(kL2Data, kMagicData);
    print_npt_bits(kL2Data);
    println("translate: L2-physical ", hex(kL2Large, 1), " is a 2 MiB page at L1-physical ", hex(kL1Large, 1));
    expect_read(kL2LargeRead, kMagicLarge);
    // A 1 GiB leaf of L1's NPT at L1-physical 0 (only its first 16 MiB are L1 RAM), and a 2 MiB
    // page of L2's own tables inside it.
    npt_map_large(kL2Huge, 0, 3);
    u64 pd = take_frame();
    npt_map(kL2HugePd, pd);
    table(tables.pdpt)[(kL2Huge >> 30) & 511] = kL2HugePd | kPtePresent | kPteWritable;
    table(pd)[svm::npt::index(kL2HugeRead, 2)] =
        (kL2HugeRead & ~u64{0x1FFFFF}) | kPtePresent | kPteWritable | kPteLarge;
    *reinterpret_cast<u64*>(kL2HugeRead - kL2Huge) = kMagicHuge;
    println("translate: L2-physical ", hex(kL2Huge, 1), " is a 1 GiB page at L1-physical 0x0");
    expect_read(kL2HugeRead, kMagicHuge);
    expect_exit(svm::exit_code::hlt);
    println("L2 exit 0x78 hlt at L2 rip ", hex(vmcb.save.rip, 1));
    return 0;
}

// Each #NPF: printed, then L1 maps what was missing and resumes L2 at the same instruction.
void expect_npf() {
    expect_exit(svm::exit_code::npf);
    print_npf();
}

int npf() {
    L2Tables tables = set_up_npt(frame_with(kMagicData));
    set_up_vmcb(npt_l2_npf);
    expect_npf();
    npt_map(kL2Unmapped, frame_with(kMagicLateMap));
    println("L1 maps ", hex(kL2Unmapped, 1), " and resumes L2");
    expect_read(kL2Unmapped, kMagicLateMap);
    expect_npf();
    npt_map(kL2Pt, tables.pt);
    println("L1 maps L2's page table ", hex(kL2Pt, 1), " and resumes L2");
    expect_read(kL2Walk, kMagicData);
    expect_npf();
    npt_map(kL2Landing, reinterpret_cast<u64>(npt_l2_code_page), false);
    println("L1 maps ", hex(kL2Landing, 1), " to L2's code and resumes L2");
    expect_exit(svm::exit_code::cpuid);
    println("L2 exit 0x72 cpuid at L2 rip ", hex(vmcb.save.rip, 1));
    step_over();
    expect_exit(svm::exit_code::hlt);
    println("L2 exit 0x78 hlt");
    return 0;
}

int remap() {
    set_up_npt(frame_with(kMagicData));
    set_up_vmcb(npt_l2_remap);
    expect_read(kL2Data, kMagicData);
    npt_map(kL2Data, frame_with(kMagicRemapFlush));
    vmcb.control.tlb_control = svm::kTlbControlFlushAll;
    println("L1 points ", hex(kL2Data, 1), " at another frame, TLB_CONTROL flush");
    expect_read(kL2Data, kMagicRemapFlush);
    vmcb.control.tlb_control = svm::kTlbControlNothing;
    npt_map(kL2Data, frame_with(kMagicRemapInvlpga));
    svm::invlpga(kL2Data, kAsid);
    println("L1 points ", hex(kL2Data, 1), " at a third frame, INVLPGA");
    expect_read(kL2Data, kMagicRemapInvlpga);
    expect_exit(svm::exit_code::hlt);
    println("L2 exit 0x78 hlt");
    return 0;
}

int readonly() {
    set_up_npt(frame_with(kMagicData));
    u64 page = frame_with(kMagicReadOnly);
    npt_map(kL2ReadOnly, page, false);
    set_up_vmcb(npt_l2_read_only);
    expect_read(kL2ReadOnly, kMagicReadOnly);
    expect_npf();
    println("L1's frame still holds ", hex(*table(page), 1));
    npt_map(kL2ReadOnly, page, true);
    vmcb.control.tlb_control = svm::kTlbControlFlushAll;
    println("L1 makes ", hex(kL2ReadOnly, 1), " writable and resumes L2");
    expect_read(kL2ReadOnly, kL2Wrote);
    println("L1's frame now holds ", hex(*table(page), 1));
    print_npt_bits(kL2ReadOnly);
    expect_exit(svm::exit_code::hlt);
    println("L2 exit 0x78 hlt");
    return 0;
}

int nx() {
    u64 l1_efer = rdmsr(svm::kMsrEfer);
    set_up_npt(frame_with(kMagicData));
    *npt_leaf(kL2Landing) =
        reinterpret_cast<u64>(npt_l2_code_page) | svm::npt::present | svm::npt::user | svm::npt::no_execute;
    set_up_vmcb(npt_l2_jump_landing);
    vmcb.save.efer &= ~kEferNxe;
    println("nx: L1's EFER.NXE ", (l1_efer & kEferNxe) ? 1 : 0, ", L2's ", (vmcb.save.efer & kEferNxe) ? 1 : 0,
            ", L1's NPT maps ", hex(kL2Landing, 1), " no-execute");
    expect_npf();
    npt_map(kL2Landing, reinterpret_cast<u64>(npt_l2_code_page), false);
    vmcb.control.tlb_control = svm::kTlbControlFlushAll;
    println("L1 lets L2 execute ", hex(kL2Landing, 1), " and resumes L2");
    expect_exit(svm::exit_code::cpuid);
    println("L2 exit 0x72 cpuid at L2 rip ", hex(vmcb.save.rip, 1));
    step_over();
    expect_exit(svm::exit_code::hlt);
    println("L2 exit 0x78 hlt");
    return 0;
}

constexpr u64 kRegionsBase = NPT_L2_BUDGET_BASE, kRegion = 0x200000;

// L2's `regions` 2 MiB regions from kRegionsBase, each the same 2 MiB of L1's, kL1Large (a large
// leaf each in L1's NPT, and a large page of L2's own tables, whose page directories are at
// NPT_L2_BUDGET_PD): L2 needs one shadow page table per region, L1 only a few tables of its own.
void map_regions(const L2Tables& tables, u64 regions) {
    constexpr u64 kPdL2 = NPT_L2_BUDGET_PD;
    for (u64 i = 0; i < regions; ++i) npt_map_large(kRegionsBase + i * kRegion, kL1Large);
    for (u64 gib = 0; gib * 512 < regions; ++gib) {
        u64 pd = take_frame();
        npt_map(kPdL2 + gib * kPage, pd);
        table(tables.pdpt)[((kRegionsBase >> 30) + gib) & 511] = (kPdL2 + gib * kPage) | kPtePresent | kPteWritable;
        for (u64 i = 0; i < 512 && gib * 512 + i < regions; ++i)
            table(pd)[i] = (kRegionsBase + (gib * 512 + i) * kRegion) | kPtePresent | kPteWritable | kPteLarge;
    }
}

int budget() {
    constexpr u64 kBase = kRegionsBase, kRegions = NPT_L2_BUDGET_REGIONS;
    L2Tables tables = set_up_npt(frame_with(kMagicData));
    u64 expected = 0;
    for (u64 i = 0; i < kRegions; ++i) {
        reinterpret_cast<u64*>(kL1Large)[i] = 3 * i + 1;
        expected += 3 * i + 1;
    }
    map_regions(tables, kRegions);
    set_up_vmcb(npt_l2_budget);
    println("budget: L2 reads one word in each of ", kRegions, " 2 MiB regions from L2-physical ", hex(kBase, 1));
    expect_read(kBase, expected);
    expect_exit(svm::exit_code::hlt);
    println("L2 exit 0x78 hlt");
    return 0;
}

constexpr u64 kSharedRegions = NPT_L2_SHARED_REGIONS;

// The order of the two domains' steps, in TSC cycles from their start (about 2 GHz under QEMU):
// the healthy domain is done and the other domain has its nested state (VMSAVE allocates it)
// before the reader builds its shadow; the other domain starts shadows of its own only once the
// reader has run INVLPGA (a fraction of a second after its start), and while the reader still
// reads (for seconds). So the first frames the kernel hands out then are the reader's freed ones.
constexpr u64 kReaderStart = 3'000'000'000;
constexpr u64 kMarkerStart = 6'000'000'000;

void wait_until(u64 start, u64 cycles) {
    while (rdtsc() - start < cycles) asm volatile("pause");
}

int invlpga(u64 start) {
    L2Tables tables = set_up_npt(frame_with(NPT_L2_READER_VALUE));
    map_regions(tables, kSharedRegions);
    set_up_vmcb(npt_l2_invlpga_reader);
    wait_until(start, kReaderStart);
    println("invlpga: L2 touches ", kSharedRegions, " regions, runs INVLPGA, then reads ", hex(kL2Data, 1), " for ",
            u64{NPT_L2_READER_CYCLES}, " cycles");
    expect_exit(svm::exit_code::cpuid);
    u64 marker = vmcb.save.rax >> 32, wrong = vmcb.save.rax & 0xFFFFFFFF;
    println("invlpga: L2 read the other domain's marker ", marker, " times, another wrong value ", wrong, " times",
            marker || wrong ? " (WRONG)" : "");
    step_over();
    expect_exit(svm::exit_code::hlt);
    println("L2 exit 0x78 hlt");
    return marker || wrong ? 1 : 0;
}

// L2's kL2Data holds the marker; each run starts on a fresh shadow (TLB_CONTROL), whose tables are
// the first frames the kernel has free, at the start of a time slice (after a yield), so that L2
// maps its code, page tables and kL2Data before anyone else runs.
int marker(u64 start) {
    constexpr u32 kRuns = 6;
    alignas(4096) static svm::Vmcb scratch;
    svm::vmsave(&scratch);  // Nestor allocates the nested state now
    set_up_npt(frame_with(NPT_L2_MARKER));
    set_up_vmcb(npt_l2_marker_holder);
    u64 entry = vmcb.save.rip;
    wait_until(start, kMarkerStart);
    for (u32 run = 0; run < kRuns; ++run) {
        vmcb.save.rip = entry;
        vmcb.control.tlb_control = svm::kTlbControlFlushAll;
        yield();
        expect_exit(svm::exit_code::hlt);
    }
    println("marker: L2 read ", hex(u64{NPT_L2_MARKER}, 1), " in ", kRuns, " runs of its own");
    return 0;
}

u64 l2_address(const char* routine) { return kL2Code + static_cast<u64>(routine - npt_l2_code_page); }

int event() {
    constexpr u8 kVectorUd = 6;
    constexpr u64 kEvent = svm::event::valid | (svm::event::type_exception << 8) | kVectorUd;
    set_up_npt(frame_with(kMagicData));
    // L2's GDT: a copy of L1's (its CS selector is L1's), at an address of L2's.
    svm::VmcbSegment l1_gdt = svm::read_gdtr();
    u64 gdt = take_frame();
    for (u64 i = 0; i <= l1_gdt.limit && i < kPage; ++i)
        reinterpret_cast<u8*>(gdt)[i] = reinterpret_cast<const u8*>(l1_gdt.base)[i];
    npt_map(kL2Gdt, gdt);
    // L2's IDT: a 64-bit interrupt gate for #UD to its handler; not in L1's NPT yet.
    u64 idt = take_frame();
    u64 handler = l2_address(npt_l2_event_handler);
    u64* gate = &table(idt)[u64{2} * kVectorUd];
    gate[0] = (handler & 0xFFFF) | (u64{svm::read_cs()} << 16) | (u64{0x8E} << 40) | ((handler >> 16 & 0xFFFF) << 48);
    gate[1] = handler >> 32;
    set_up_vmcb(npt_l2_event_entry);
    vmcb.save.gdtr = svm::VmcbSegment{0, 0, l1_gdt.limit, kL2Gdt};
    vmcb.save.idtr = svm::VmcbSegment{0, 0, 0xFFF, kL2Idt};
    vmcb.control.intercept_exceptions &= ~(1u << kVectorUd);  // L2's own handler takes it
    vmcb.control.event_inject = kEvent;
    println("event: L1 injects ", hex(kEvent, 1), " (#UD) into L2, whose IDT at ", hex(kL2Idt, 1),
            " L1's NPT does not map");
    expect_npf();
    println("EXITINTINFO ", hex(vmcb.control.exit_int_info, 1), ", EVENTINJ ", hex(vmcb.control.event_inject, 1));
    npt_map(kL2Idt, idt);
    vmcb.control.event_inject = vmcb.control.exit_int_info;
    println("L1 maps the IDT and injects EXITINTINFO again");
    expect_exit(svm::exit_code::cpuid);
    u64 interrupted = vmcb.save.rax;
    println("L2 exit 0x72 cpuid in L2's handler at L2 rip ", hex(vmcb.save.rip, 1), ": it interrupted L2 rip ",
            hex(interrupted, 1), interrupted == l2_address(npt_l2_event_entry) ? " (L2's entry)" : " (WRONG)");
    step_over();
    expect_exit(svm::exit_code::hlt);
    println("L2 exit 0x78 hlt");
    return interrupted == l2_address(npt_l2_event_entry) ? 0 : 1;
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot* boot) {
    u64 start = rdtsc();
    char which[16];
    const char* c = boot->cmdline_value("case", which, sizeof(which));
    if (!c) {
        println("npt: no case= on the command line");
        return 1;
    }
    enable_svm();
    int status = 1;
    if (string_equal(c, "translate"))
        status = translate();
    else if (string_equal(c, "npf"))
        status = npf();
    else if (string_equal(c, "remap"))
        status = remap();
    else if (string_equal(c, "readonly"))
        status = readonly();
    else if (string_equal(c, "nx"))
        status = nx();
    else if (string_equal(c, "budget"))
        status = budget();
    else if (string_equal(c, "event"))
        status = event();
    else if (string_equal(c, "invlpga"))
        status = invlpga(start);
    else if (string_equal(c, "marker"))
        status = marker(start);
    else
        println("npt: unknown case ", c);
    if (status == 0) println("npt ", c, ": done");
    return status;
}
