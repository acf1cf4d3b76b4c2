// Building vmcb02 (see vmcb02.hpp for the rules and why).
#include "vmcb02.hpp"

namespace nestor::nested::svm {

using namespace arch;

namespace {

// Intercepts: mandatory | L0's | L1's.
void merge_intercepts(const VmcbControl& l1, const L0Controls& l0, VmcbControl& out) {
    out.intercept_cr = l0.intercept_cr | l1.intercept_cr;
    out.intercept_dr = l0.intercept_dr | l1.intercept_dr;
    out.intercept_exceptions = mandatory::exceptions | l0.intercept_exceptions | l1.intercept_exceptions;
    out.intercept_misc1 = mandatory::misc1 | l0.intercept_misc1 | l1.intercept_misc1;
    out.intercept_misc2 = mandatory::misc2 | l0.intercept_misc2 | l1.intercept_misc2;
    out.intercept_misc3 = l0.intercept_misc3 | l1.intercept_misc3;
}

void merge_controls(const VmcbControl& l1, const L0Controls& l0, paddr root, VmcbControl& out) {
    merge_intercepts(l1, l0, out);
    out.pause_filter_threshold = l1.pause_filter_threshold;
    out.pause_filter_count = l1.pause_filter_count;
    out.iopm_base_pa = l0.iopm_pa;
    out.msrpm_base_pa = l0.msrpm_pa;
    out.tsc_offset = l0.tsc_offset + l1.tsc_offset;  // wraps, as the CPU's sum does
    out.guest_asid = l0.l2_asid;
    out.tlb_control = (l0.flush_tlb || l1.tlb_control != x86::svm::kTlbControlNothing) ? x86::svm::kTlbControlFlushAll
                                                                                       : x86::svm::kTlbControlNothing;
    // Host RFLAGS.IF must keep gating physical interrupts: V_INTR_MASKING is always L0's.
    out.int_ctl = (l1.int_ctl & kIntCtlFromL1) | int_ctl::v_intr_masking;
    out.int_vector = l1.int_vector & 0xFF;
    out.interrupt_shadow = l1.interrupt_shadow & kInterruptShadow;
    out.nested_control = x86::svm::kNestedPagingEnable;
    out.nested_cr3 = root;
    out.event_inject = l1.event_inject & event::defined_bits;
}

// The state VMRUN loads from vmcb12 (APM 15.5.1); the rest of vmcb02 stays zero (no LBR
// virtualization: DBGCTL and the branch records; no CET: S_CET, SSP, ISST).
void copy_vmrun_state(const VmcbSave& l1, VmcbSave& out) {
    out.es = l1.es;
    out.cs = l1.cs;
    out.ss = l1.ss;
    out.ds = l1.ds;
    out.gdtr = l1.gdtr;
    out.idtr = l1.idtr;
    out.cpl = l1.cpl;
    out.efer = l1.efer;
    out.cr4 = l1.cr4;
    out.cr3 = l1.cr3;
    out.cr0 = l1.cr0;
    out.dr7 = l1.dr7;
    out.dr6 = l1.dr6;
    out.rflags = l1.rflags | kRflagsFixed1;
    out.rip = l1.rip;
    out.rsp = l1.rsp;
    out.rax = l1.rax;
    out.cr2 = l1.cr2;
}

// Every field of vmcb02 that neither the merge nor the copy above write (but the VMLOAD state): zero, as L1 can
// never set them (AVIC, SEV, virt_ext, CET, LBR) and the CPU's outputs of the last run must not
// look like this one's. The reserved bytes are zero from the allocation: nothing writes them.
// (Field by field: zeroing the whole page at every VMRUN was most of VMRUN's cost.)
void clear_fields_not_merged(Vmcb& vmcb02) {
    VmcbControl& c = vmcb02.control;
    c.exit_code = 0;
    c.exit_info_1 = 0;
    c.exit_info_2 = 0;
    c.exit_int_info = 0;
    c.avic_apic_bar = 0;
    c.ghcb_pa = 0;
    c.virt_ext = 0;
    c.clean_bits = 0;
    c.next_rip = 0;
    c.bytes_fetched = 0;
    fill_bytes(c.guest_instruction_bytes, 0, sizeof(c.guest_instruction_bytes));
    c.avic_backing_page = 0;
    c.avic_logical_table = 0;
    c.avic_physical_table = 0;
    c.vmsa_pa = 0;
    VmcbSave& s = vmcb02.save;
    s.s_cet = 0;
    s.ssp = 0;
    s.isst_addr = 0;
    s.dbgctl = 0;
    s.br_from = 0;
    s.br_to = 0;
    s.last_excp_from = 0;
    s.last_excp_to = 0;
}

}  // namespace

Status<MergeError> build_vmcb02(const Vmcb& snapshot, const VmcbSave& l1_cpu, const L0Controls& l0, Vmcb& vmcb02) {
    if (l0.l2_asid == 0 || l0.l2_asid == l0.l1_asid) return fail(MergeError::bad_asid);
    bool nested_paging = uses_nested_paging(snapshot);
    paddr root = nested_paging ? l0.shadow_npt_root : l0.l1_npt_root;
    if (root == 0) return fail(MergeError::missing_root);
    clear_fields_not_merged(vmcb02);
    merge_controls(snapshot.control, l0, root, vmcb02.control);
    copy_vmrun_state(snapshot.save, vmcb02.save);
    // gPAT is L2's PAT under L1's nested tables; without them L2 shares L1's memory types.
    vmcb02.save.g_pat = nested_paging ? snapshot.save.g_pat : l1_cpu.g_pat;
    return {};
}

namespace {

u64 load_word(const u8* map, usize word) {
    u64 w;
    __builtin_memcpy(&w, map + word * 8, sizeof(w));
    return w;
}

void store_word(u8* map, usize word, u64 w) { __builtin_memcpy(map + word * 8, &w, sizeof(w)); }

}  // namespace

void start_merge(const u8* l0_map, usize bytes, u8* merged, PassThroughRuns& out) {
    copy_bytes(merged, l0_map, bytes);
    out.count = 0;
    usize words = bytes / 8;
    for (usize i = 0; i < words;) {
        if (load_word(l0_map, i) == ~u64{0}) {
            ++i;
            continue;
        }
        usize first = i;
        while (i < words && load_word(l0_map, i) != ~u64{0}) ++i;
        out.runs[out.count++] = WordRun{static_cast<u16>(first), static_cast<u16>(i - first)};
    }
}

bool remerge_permission_map(const u8* l0_map, L1Memory& memory, u64 l1_map_pa, bool l1_uses,
                            const PassThroughRuns& pass_through, u8* merged) {
    if (pass_through.count == 0) return true;
    // L1's words from the first run's to the last run's, usually one piece of L1's memory: one
    // window over them all (a read per run cost three times the lookup), each word read once into
    // the merged map. Across two pieces, a read per run.
    const u8* l1_words = nullptr;
    usize first_word = pass_through.runs[0].first;
    if (l1_uses) {
        const WordRun& last = pass_through.runs[pass_through.count - 1];
        usize span = (usize{last.first} + last.count - first_word) * 8;
        l1_words = memory.window(l1_map_pa + u64{first_word} * 8, span, false);
    }
    for (u16 r = 0; r < pass_through.count; ++r) {
        const WordRun& run = pass_through.runs[r];
        u8* out = merged + usize{run.first} * 8;
        if (!l1_uses) {
            copy_bytes(out, l0_map + usize{run.first} * 8, usize{run.count} * 8);
            continue;
        }
        if (l1_words) {
            for (usize i = run.first; i < usize{run.first} + run.count; ++i)
                store_word(merged, i, load_word(l1_words, i - first_word) | load_word(l0_map, i));
            continue;
        }
        if (!memory.read(l1_map_pa + u64{run.first} * 8, out, usize{run.count} * 8)) return false;
        for (usize i = run.first; i < usize{run.first} + run.count; ++i)
            store_word(merged, i, load_word(merged, i) | load_word(l0_map, i));
    }
    return true;
}

}  // namespace nestor::nested::svm
