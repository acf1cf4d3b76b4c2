// The AMD SVM backend: detection, enabling, VMCB set-up, nested paging, the run loop's entry and
// the decoding of every exit into a vendor-neutral VmExit. It serves the kernel through one
// constant VirtOps table (svm_backend()).
//
// Written for QEMU TCG's SVM as well as hardware: no NRIP save (instruction lengths are decoded
// from guest memory), no decode assists, no VMCB clean bits (clean_bits stays 0: the CPU reloads
// everything), no FlushByAsid (TLB_CONTROL=1 flushes everything when a flush is needed).
#include "nestor/lib/assert.hpp"
#include "nestor/lib/placement_new.hpp"
#include "nestor/log.hpp"
#include "nestor/platform.hpp"
#include "nestor/virt/cr4_policy.hpp"
#include "nestor/virt/virt_ops.hpp"
#include "nestor/x86/cpu.hpp"
#include "nestor/x86/guest_context.hpp"
#include "nestor/x86/guest_walk.hpp"
#include "nestor/x86/kernel_memory.hpp"
#include "nestor/x86/local_apic.hpp"
#include "nestor/x86/page_table_builder.hpp"
#include "nestor/x86/svm/insn_decode.hpp"
#include "nestor/x86/svm/nested_context.hpp"
#include "nestor/x86/svm/vmcb.hpp"

// world_switch.S, with a convention of its own: see enter_guest().
extern "C" void svm_world_switch();
// The VMSAVE / VMLOAD area for the host's FS, GS, TR, LDTR and syscall MSRs (svm_enable()); the
// world switch reads it itself after every exit.
extern "C" {
nestor::paddr svm_host_vmcb = 0;
}

namespace nestor::virt {

using namespace nestor::x86;
using namespace nestor::x86::svm;

// An SVM VM: its nested page tables and the permission maps its vCPUs share. It lives in a
// frame of its own; guest memory belongs to the kernel, which maps it through map().
struct BackendVm {
    paddr self;
    paddr npt_root;
    paddr iopm_pa;
    paddr msrpm_pa;
    u32 vcpus;
    u64 tlb_generation;  // bumped by every unmap: vCPUs that saw an older one flush first
};
static_assert(sizeof(BackendVm) <= kPageSize);

// The host bytes of the guest code page the last decoded instruction came from. An unmap in the
// VM (a new TLB generation) forgets it: run_once() clears `host` when it sees one.
struct CodePageCache {
    u64 linear_page;
    u64 cr0, cr3, cr4;
    const u8* host;  // null: nothing cached
};

// An SVM vCPU behind the kernel's opaque handle. ASIDs are per vCPU: each has its own guest
// translations even when the VM's nested tables are shared.
struct BackendVcpu {
    paddr self;  // the frame holding this object
    BackendVm* vm;
    paddr vmcb_pa;  // the active VMCB: L1's own, or vmcb02 while the vCPU runs an L2
    Vmcb* vmcb;
    // Where the world switch VMLOADs and VMSAVEs the guest's FS, GS, TR, LDTR, KernelGsBase and
    // syscall MSRs: the vCPU's own VMCB, even while it runs an L2. A CPU keeps that state across
    // VMRUN and #VMEXIT, so L1 and its L2 share one copy (vmcb01's), and the nested component
    // never copies it between vmcb01 and vmcb02 (nested_context.hpp).
    paddr vmload_pa;
    u32 asid;
    bool flush_tlb;
    u64 tlb_generation;  // the VM's generation this vCPU's TLB reflects
    u64 pending_event;   // EVENTINJ for the next entry; 0: none (a queued event has kEventValid)
    // The active VMCB's code page: codes[0] for the vCPU's own VMCB, codes[1] for vmcb02 while
    // it runs an L2. Each VMCB keeps its own across the other's run (switch_vmcb).
    CodePageCache* code;
    CodePageCache codes[2];
    paddr parked_l2_root;  // vmcb02's nested root when L2 last stopped running
    bool nested;           // created with InitialMode::nested: `l2` is allocated
    NestedContext l2;
    // Extended state, XCR0 and DR0-DR3, which VMRUN leaves alone: L1 and its L2 share them, as
    // they share the CPU's.
    GuestContext context;
};
static_assert(sizeof(BackendVcpu) <= kPageSize);

namespace {

constexpr u32 kMsrVmHsavePa = 0xC0010117;
constexpr u64 kEferSvme = u64{1} << 12;
constexpr u64 kEferLma = u64{1} << 10;
constexpr u64 kCr0Pe = u64{1} << 0;
constexpr u64 kCr0Et = u64{1} << 4;
constexpr u64 kCr0Wp = u64{1} << 16;
constexpr u64 kEferNxe = u64{1} << 11;
constexpr u64 kRflagsVm = u64{1} << 17;
constexpr u64 kResetPat = 0x0007040600070406;
constexpr u32 kMaxAsids = 64;

// Per-CPU state (one CPU so far). Constant-initialised.
bool svm_enabled = false;
paddr host_save_area = 0;  // VM_HSAVE_PA: where VMRUN keeps the host state
bool asid_used[kMaxAsids] = {};
const BackendVcpu* slice_owner = nullptr;  // whose time slice the APIC timer is counting

AllocatorTableMemory npt_memory() { return AllocatorTableMemory(kernel_frames(), kernel_physical_memory()); }

void free_frame(paddr frame) {
    if (!frame) return;
    auto freed = kernel_frames().free(frame);
    if (!freed) log::warn("svm: freeing frame {:#x}: {}", frame, frame_error_name(freed.error()));
}

paddr allocate_contiguous_zeroed(u64 count, const char* purpose) {
    auto run = kernel_frames().allocate_contiguous(count, kPageSize);
    if (!run) {
        log::error("svm: no {} contiguous frames for {}", count, purpose);
        return 0;
    }
    for (u64 i = 0; i < count; ++i) fill_bytes(frame_pointer<u8>(*run + i * kPageSize), 0, kPageSize);
    return *run;
}

bool svm_supported() {
    const CpuFeatures& cpu = platform::cpu_features();
    return cpu.svm && cpu.npt && cpu.svm_asids > 1;
}

Status<VirtError> svm_enable() {
    if (!svm_supported()) return fail(VirtError::unsupported);
    if (svm_enabled) return {};
    // VM_CR.SVMDIS is not read: Bochs' AMD models #GP on VM_CR; if firmware disabled SVM the
    // EFER write below faults, which the kernel reports.
    host_save_area = allocate_zeroed_frame_or_panic("SVM host save area");
    svm_host_vmcb = allocate_zeroed_frame_or_panic("SVM host VMCB");
    wrmsr(msr::efer, rdmsr(msr::efer) | kEferSvme);
    wrmsr(kMsrVmHsavePa, host_save_area);
    // The host's FS, GS, TR, LDTR, KernelGsBase and syscall MSRs, which VMRUN does not restore:
    // saved once, as they were set at boot and never change, and loaded after every exit.
    asm volatile("vmsave %%rax" ::"a"(svm_host_vmcb) : "memory");
    guest_context_enable();
    svm_enabled = true;
    log::debug("svm: enabled, host save area {:#x}, host VMCB {:#x}", host_save_area, svm_host_vmcb);
    return {};
}

void svm_disable() {
    if (!svm_enabled) return;
    wrmsr(kMsrVmHsavePa, 0);
    wrmsr(msr::efer, rdmsr(msr::efer) & ~kEferSvme);
    free_frame(host_save_area);
    free_frame(svm_host_vmcb);
    host_save_area = svm_host_vmcb = 0;
    svm_enabled = false;
}

u32 allocate_asid() {
    u32 limit = min(platform::cpu_features().svm_asids, kMaxAsids);
    for (u32 asid = 1; asid < limit; ++asid) {  // ASID 0 is the host's
        if (!asid_used[asid]) {
            asid_used[asid] = true;
            return asid;
        }
    }
    return 0;
}

// Frees the nested page tables (4 KiB leaves only: guest memory is mapped page by page).
void free_npt(paddr root) {
    if (!root) return;
    constexpr u64 kPresent = 1, kLarge = u64{1} << 7, kAddress = 0x000FFFFFFFFFF000;
    u64* pml4 = frame_pointer<u64>(root);
    for (usize a = 0; a < 512; ++a) {
        if (!(pml4[a] & kPresent)) continue;
        u64* pdpt = frame_pointer<u64>(pml4[a] & kAddress);
        for (usize b = 0; b < 512; ++b) {
            if (!(pdpt[b] & kPresent) || (pdpt[b] & kLarge)) continue;
            u64* pd = frame_pointer<u64>(pdpt[b] & kAddress);
            for (usize c = 0; c < 512; ++c)
                if ((pd[c] & kPresent) && !(pd[c] & kLarge)) free_frame(pd[c] & kAddress);
            free_frame(pdpt[b] & kAddress);
        }
        free_frame(pml4[a] & kAddress);
    }
    free_frame(root);
}

void free_frames(paddr first, usize bytes) {
    for (usize i = 0; first && i < bytes / kPageSize; ++i) free_frame(first + i * kPageSize);
}

void svm_destroy_vm(VmHandle vm) {
    if (!vm) return;
    ASSERT(vm->vcpus == 0);
    free_npt(vm->npt_root);
    free_frames(vm->iopm_pa, kIopmBytes);
    free_frames(vm->msrpm_pa, kMsrpmBytes);
    paddr self = vm->self;
    vm->~BackendVm();
    free_frame(self);
}

Result<VmHandle, VirtError> svm_create_vm() {
    if (!svm_enabled) return fail(VirtError::unsupported);
    paddr self = allocate_zeroed_frame_or_panic("SVM VM");
    BackendVm* vm = new (frame_pointer<void>(self)) BackendVm{};
    vm->self = self;
    vm->iopm_pa = allocate_contiguous_zeroed(kIopmBytes / kPageSize, "the I/O permission map");
    vm->msrpm_pa = allocate_contiguous_zeroed(kMsrpmBytes / kPageSize, "the MSR permission map");
    AllocatorTableMemory tables_memory = npt_memory();
    PageTableBuilder npt(tables_memory);
    if (!vm->iopm_pa || !vm->msrpm_pa || !npt.create_root()) {
        svm_destroy_vm(vm);
        return fail(VirtError::out_of_memory);
    }
    vm->npt_root = npt.root();
    // Intercept every port and every MSR: the kernel decides each access.
    fill_bytes(frame_pointer<u8>(vm->iopm_pa), 0xFF, kIopmBytes);
    fill_bytes(frame_pointer<u8>(vm->msrpm_pa), 0xFF, kMsrpmBytes);
    return vm;
}

// Nested walks are user accesses, so every mapping is user.
Status<VirtError> svm_map(VmHandle vm, const GuestMapping& m) {
    if (!is_aligned(m.guest_physical, kPageSize) || !is_aligned(m.host_physical, kPageSize) ||
        !is_aligned(m.size, kPageSize) || m.size == 0)
        return fail(VirtError::bad_guest);
    AllocatorTableMemory tables_memory = npt_memory();
    PageTableBuilder npt(tables_memory, WxPolicy::allow);
    npt.use_root(vm->npt_root);
    Permissions perm{.writable = m.writable, .executable = m.executable, .user = true, .global = false};
    auto mapped = npt.map(m.guest_physical, m.host_physical, m.size, perm);
    if (mapped) return {};
    switch (mapped.error()) {
    case MapError::already_mapped:
    case MapError::would_split_large_page: return fail(VirtError::overlapping_mapping);
    case MapError::out_of_memory: return fail(VirtError::out_of_memory);
    default: return fail(VirtError::bad_guest);
    }
}

Status<VirtError> svm_unmap(VmHandle vm, u64 guest_physical, u64 size) {
    AllocatorTableMemory tables_memory = npt_memory();
    PageTableBuilder npt(tables_memory);
    npt.use_root(vm->npt_root);
    auto unmapped = npt.unmap(guest_physical, size);
    vm->tlb_generation++;  // even a refused unmap may follow an earlier partial change: flush
    if (unmapped) return {};
    return fail(unmapped.error() == MapError::would_split_large_page ? VirtError::overlapping_mapping
                                                                     : VirtError::bad_guest);
}

void svm_destroy_vcpu(VcpuHandle vcpu) {
    if (!vcpu) return;
    if (slice_owner == vcpu) {
        lapic::disarm();
        slice_owner = nullptr;
    }
    if (vcpu->nested) {
        NestedContext& n = vcpu->l2;
        free_frame(n.vmcb02_pa);
        free_frames(n.merged_iopm_pa, kIopmBytes);
        free_frames(n.merged_msrpm_pa, kMsrpmBytes);
        free_frame(n.empty_npt_root);
        if (n.l2_asid && n.l2_asid < kMaxAsids) asid_used[n.l2_asid] = false;
        vcpu->vmcb_pa = n.vmcb01_pa;  // the vCPU's own VMCB, whichever ran last
    }
    free_frame(vcpu->vmcb_pa);
    guest_context_destroy(vcpu->context);
    if (vcpu->asid < kMaxAsids) asid_used[vcpu->asid] = false;
    vcpu->vm->vcpus--;
    paddr self = vcpu->self;
    vcpu->~BackendVcpu();
    free_frame(self);
}

VmcbSegment segment(u16 selector, u64 base, u32 limit, u16 attrib) {
    return VmcbSegment{selector, attrib, limit, base};
}

// The state of a CPU after reset, but with CS:IP at the guest's entry (CS base 0).
void set_real_mode_state(Vmcb& vmcb) {
    VmcbSave& s = vmcb.save;
    s.cs = segment(0, 0, 0xFFFF, attrib::code_rx);
    s.ds = s.es = s.ss = s.fs = s.gs = segment(0, 0, 0xFFFF, attrib::data_rw);
    s.gdtr = segment(0, 0, 0xFFFF, 0);
    s.idtr = segment(0, 0, 0xFFFF, 0);  // the real-mode IVT at 0
    s.ldtr = segment(0, 0, 0xFFFF, attrib::ldt);
    s.tr = segment(0, 0, 0xFFFF, attrib::tss_busy);
    s.cpl = 0;
    s.efer = kEferSvme;  // VMRUN requires EFER.SVME in the guest state; the guest's view omits it
    s.cr0 = kCr0Et;
    s.cr3 = 0;
    s.cr4 = 0;
    s.dr6 = 0xFFFF0FF0;
    s.dr7 = 0x400;
    s.rflags = kRflagsReserved1;
    s.g_pat = kResetPat;
}

// The multiboot machine state: flat 4 GiB 32-bit segments, protected mode, paging off.
void set_protected32_state(Vmcb& vmcb) {
    set_real_mode_state(vmcb);
    VmcbSave& s = vmcb.save;
    constexpr u16 kFlat32 = attrib::default32 | attrib::granularity;
    s.cs = segment(0x08, 0, 0xFFFFFFFF, attrib::code_rx | kFlat32);
    s.ds = s.es = s.ss = s.fs = s.gs = segment(0x10, 0, 0xFFFFFFFF, attrib::data_rw | kFlat32);
    s.cr0 = kCr0Et | kCr0Pe;
}

// Flat 64-bit code with the loader's identity page tables at `cr3`.
void set_long64_state(Vmcb& vmcb, u64 cr3) {
    set_protected32_state(vmcb);
    VmcbSave& s = vmcb.save;
    s.cs = segment(0x08, 0, 0xFFFFFFFF, attrib::code_rx | attrib::long_mode | attrib::granularity);
    s.cr0 = kCr0Et | kCr0Pe | kCr0Wp | kCr0Pg;
    s.cr3 = cr3;
    s.cr4 = kCr4Pae;
    s.efer = kEferSvme | kEferLme | kEferLma | kEferNxe;
}

// Long mode first, the common case: EFER.LMA implies CR0.PE and PG, and long mode has no
// virtual-8086 mode.
CpuMode mode_of(const VmcbSave& s) {
    if ((s.efer & kEferLma) && (s.cs.attrib & attrib::long_mode)) return CpuMode::long64;
    if (!(s.cr0 & kCr0Pe) || (s.rflags & kRflagsVm)) return CpuMode::real16;
    return (s.cs.attrib & attrib::default32) ? CpuMode::protected32 : CpuMode::protected16;
}

Status<VirtError> set_initial_state(Vmcb& vmcb, const InitialMode& initial) {
    switch (initial.mode) {
    case CpuMode::real16: set_real_mode_state(vmcb); return {};
    case CpuMode::protected32: set_protected32_state(vmcb); return {};
    case CpuMode::long64:
        if (!is_aligned(initial.cr3, kPageSize)) return fail(VirtError::bad_guest);
        set_long64_state(vmcb, initial.cr3);
        return {};
    case CpuMode::protected16: break;
    }
    return fail(VirtError::bad_guest);
}

void set_controls(BackendVcpu& vcpu) {
    VmcbControl& c = vcpu.vmcb->control;
    c.intercept_misc1 = intercept1::intr | intercept1::nmi | intercept1::rdpmc | intercept1::cpuid | intercept1::invd |
                        intercept1::hlt | intercept1::invlpga | intercept1::ioio_prot | intercept1::msr_prot |
                        intercept1::shutdown;
    c.intercept_misc2 = intercept2::vmrun | intercept2::vmmcall | intercept2::vmload | intercept2::vmsave |
                        intercept2::stgi | intercept2::clgi | intercept2::skinit | intercept2::wbinvd |
                        intercept2::monitor | intercept2::mwait | intercept2::xsetbv;
    // #DB and #AC: a guest can make their delivery endless (a data breakpoint on the stack the
    // #DB frame is pushed to, an #AC handler on a misaligned stack), and no interrupt gets through
    // then: CVE-2015-8104, CVE-2015-5307. Intercepted, each delivery is an exit and the kernel
    // reflects them (the CPU has already updated the VMCB's DR6). #MC is the host's.
    c.intercept_exceptions =
        intercept_exception(kVectorDb) | intercept_exception(kVectorAc) | intercept_exception(kVectorMc);
    c.intercept_cr = kInterceptCr4Write;
    c.iopm_base_pa = vcpu.vm->iopm_pa;
    c.msrpm_base_pa = vcpu.vm->msrpm_pa;
    c.guest_asid = vcpu.asid;
    c.int_ctl = kIntCtlVIntrMasking;  // the host's RFLAGS.IF gates physical interrupts
    c.nested_control = kNestedPagingEnable;
    c.nested_cr3 = vcpu.vm->npt_root;
    c.clean_bits = 0;
}

// What running an L2 needs (nested_context.hpp), allocated with the vCPU of a nested domain so
// that a VMRUN never waits for memory: vmcb02, a second ASID, the merged permission maps and an
// empty nested root.
Status<VirtError> prepare_nested(BackendVcpu& vcpu) {
    NestedContext& n = vcpu.l2;
    vcpu.nested = true;
    n.vmcb01 = vcpu.vmcb;
    n.vmcb01_pa = vcpu.vmcb_pa;
    n.l2_asid = allocate_asid();
    if (!n.l2_asid) return fail(VirtError::out_of_asids);
    n.vmcb02_pa = allocate_contiguous_zeroed(1, "vmcb02");
    n.merged_iopm_pa = allocate_contiguous_zeroed(kIopmBytes / kPageSize, "L2's I/O permission map");
    n.merged_msrpm_pa = allocate_contiguous_zeroed(kMsrpmBytes / kPageSize, "L2's MSR permission map");
    n.empty_npt_root = allocate_contiguous_zeroed(1, "an empty nested root");
    if (!n.vmcb02_pa || !n.merged_iopm_pa || !n.merged_msrpm_pa || !n.empty_npt_root)
        return fail(VirtError::out_of_memory);
    n.vmcb02 = frame_pointer<Vmcb>(n.vmcb02_pa);
    n.l0_iopm = frame_pointer<u8>(vcpu.vm->iopm_pa);
    n.l0_msrpm = frame_pointer<u8>(vcpu.vm->msrpm_pa);
    n.merged_iopm = frame_pointer<u8>(n.merged_iopm_pa);
    n.merged_msrpm = frame_pointer<u8>(n.merged_msrpm_pa);
    n.mapping_generation = &vcpu.vm->tlb_generation;
    return {};
}

Result<VcpuHandle, VirtError> svm_create_vcpu(VmHandle vm, const InitialMode& initial, VcpuState& state) {
    if (!svm_enabled || !vm) return fail(VirtError::unsupported);
    u32 asid = allocate_asid();
    if (!asid) return fail(VirtError::out_of_asids);
    paddr self = allocate_zeroed_frame_or_panic("SVM vCPU");
    BackendVcpu* vcpu = new (frame_pointer<void>(self)) BackendVcpu{};
    vcpu->self = self;
    vcpu->vm = vm;
    vm->vcpus++;
    vcpu->asid = asid;
    vcpu->vmcb_pa = allocate_zeroed_frame_or_panic("VMCB");
    vcpu->vmcb = frame_pointer<Vmcb>(vcpu->vmcb_pa);
    vcpu->vmload_pa = vcpu->vmcb_pa;
    vcpu->code = &vcpu->codes[0];
    if (!guest_context_create(vcpu->context, false)) {
        svm_destroy_vcpu(vcpu);
        return fail(VirtError::out_of_memory);
    }
    if (auto set = set_initial_state(*vcpu->vmcb, initial); !set) {
        svm_destroy_vcpu(vcpu);
        return fail(set.error());
    }
    set_controls(*vcpu);
    if (initial.nested) {
        if (auto prepared = prepare_nested(*vcpu); !prepared) {
            svm_destroy_vcpu(vcpu);
            return fail(prepared.error());
        }
        if (initial.nested_hardware) *initial.nested_hardware = &vcpu->l2;
    }
    vcpu->flush_tlb = true;  // the ASID may hold stale translations of an earlier guest
    vcpu->tlb_generation = vm->tlb_generation;

    const Vmcb& vmcb = *vcpu->vmcb;
    state.cr0 = vmcb.save.cr0;
    state.efer = vmcb.save.efer & ~kEferSvme;
    state.cs_base = vmcb.save.cs.base;
    state.mode = mode_of(vmcb.save);
    state.rflags = vmcb.save.rflags;
    log::debug("svm: vCPU ASID {} VMCB {:#x} NPT {:#x}", asid, vcpu->vmcb_pa, vm->npt_root);
    return vcpu;
}

// Guest-physical memory through the VM's nested tables.
class NestedMemory final : public GuestPhysicalReader {
public:
    // Through the active VMCB's nested tables: L0's tables of the VM, or while an L2 runs those
    // vmcb02 uses (L0's tables of L1, or the shadow of L1's tables: the same format).
    explicit NestedMemory(const BackendVcpu& vcpu) : tables_memory_(npt_memory()), npt_(tables_memory_) {
        npt_.use_root(vcpu.vmcb->control.nested_cr3);
    }
    // The host frame holding guest-physical page `gpa`, or false if the VM does not map it.
    bool host_frame(u64 gpa, paddr& frame) {
        auto translation = npt_.translate(align_down(gpa, kPageSize));
        if (!translation) return false;
        frame = align_down(translation->physical, kPageSize);
        return true;
    }
    bool read(u64 gpa, void* out, usize size) override {
        for (usize done = 0; done < size;) {
            auto translation = npt_.translate(align_down(gpa + done, kPageSize));
            if (!translation) return false;
            u64 offset = (gpa + done) & (kPageSize - 1);
            usize chunk = min<usize>(size - done, kPageSize - offset);
            copy_bytes(static_cast<u8*>(out) + done, frame_pointer<u8>(translation->physical) + offset, chunk);
            done += chunk;
        }
        return true;
    }

private:
    AllocatorTableMemory tables_memory_;
    PageTableBuilder npt_;
};

// Copies up to `size` bytes of guest code at guest-linear `linear`, through the guest's paging
// and the nested tables. Returns how many were readable.
usize read_guest_code(BackendVcpu& vcpu, u64 linear, u8* out, usize size) {
    const VmcbSave& s = vcpu.vmcb->save;
    NestedMemory memory(vcpu);
    return read_guest_linear(GuestPaging{s.cr0, s.cr3, s.cr4, s.efer}, linear, memory, out, size);
}

// The host bytes of the guest code page at `linear_page`, remembered per vCPU: most exits come
// from a few instructions run again and again, and two page walks per exit would dominate its
// cost. The page is forgotten when the guest changes its paging registers or the VM's mappings
// change (an unmap, seen by run_once()): the frame could then belong to someone else. A guest that
// rewrites its own page tables under the same CR3 may have one exit decoded from its old code
// page; that only concerns the guest itself.
[[gnu::noinline]] const u8* walk_code_page(BackendVcpu& vcpu, u64 linear_page) {
    const VmcbSave& s = vcpu.vmcb->save;
    CodePageCache& c = *vcpu.code;
    NestedMemory memory(vcpu);
    u64 gpa = 0;
    paddr frame = 0;
    if (!guest_translate(GuestPaging{s.cr0, s.cr3, s.cr4, s.efer}, linear_page, memory, gpa) ||
        !memory.host_frame(gpa, frame)) {
        c.host = nullptr;
        return nullptr;
    }
    c = CodePageCache{linear_page, s.cr0, s.cr3, s.cr4, frame_pointer<u8>(frame)};
    return c.host;
}

inline const u8* code_page(BackendVcpu& vcpu, u64 linear_page) {
    const VmcbSave& s = vcpu.vmcb->save;
    const CodePageCache& c = *vcpu.code;
    if (c.host && c.linear_page == linear_page && c.cr3 == s.cr3 && c.cr0 == s.cr0 && c.cr4 == s.cr4) return c.host;
    return walk_code_page(vcpu, linear_page);
}

// The SVM instructions are 0F 01 with a ModRM byte of their own (D8 VMRUN ... DF INVLPGA).
inline u8 svm_group_length(const u8* code, u8 modrm) {
    return code[0] == 0x0F && code[1] == 0x01 && code[2] == modrm ? 3 : 0;
}

// The common case, an intercepted instruction without prefixes: its plain encoding. Without it
// every exit of an L1 hypervisor's VMRUN went through the full decoder (a sixth of the emulated
// VMRUN).
inline u8 plain_length(const u8* code, InsnOp expected) {
    switch (expected) {
    case InsnOp::cpuid: return code[0] == 0x0F && code[1] == 0xA2 ? 2 : 0;
    case InsnOp::vmmcall: return svm_group_length(code, 0xD9);
    case InsnOp::vmrun: return svm_group_length(code, 0xD8);
    case InsnOp::vmload: return svm_group_length(code, 0xDA);
    case InsnOp::vmsave: return svm_group_length(code, 0xDB);
    case InsnOp::stgi: return svm_group_length(code, 0xDC);
    case InsnOp::clgi: return svm_group_length(code, 0xDD);
    case InsnOp::invlpga: return svm_group_length(code, 0xDF);
    case InsnOp::hlt: return code[0] == 0xF4 ? 1 : 0;
    case InsnOp::rdmsr: return code[0] == 0x0F && code[1] == 0x32 ? 2 : 0;
    case InsnOp::wrmsr: return code[0] == 0x0F && code[1] == 0x30 ? 2 : 0;
    case InsnOp::xsetbv: return code[0] == 0x0F && code[1] == 0x01 && code[2] == 0xD1 ? 3 : 0;
    default: return 0;
    }
}

// The full decode: prefixes, an instruction crossing into the next page, or a page not cached.
[[gnu::noinline]] u8 decoded_length(BackendVcpu& vcpu, const VcpuState& state, InsnOp expected) {
    u8 bytes[kMaxInstructionLength];
    u64 linear = state.cs_base + state.rip;
    u64 offset = linear & (kPageSize - 1);
    const u8* code = nullptr;
    usize available = kMaxInstructionLength;
    if (offset + kMaxInstructionLength <= kPageSize) code = code_page(vcpu, linear - offset);
    if (code) {
        code += offset;
    } else {  // the instruction may cross into the next page
        available = read_guest_code(vcpu, linear, bytes, sizeof(bytes));
        code = bytes;
    }
    auto insn = decode_instruction(code, available, state.mode);
    if (!insn) {
        log::debug("svm: cannot decode the instruction at rip {:#x}: {}", state.rip, insn_error_name(insn.error()));
        return 0;
    }
    if (insn->op != expected) {
        log::debug("svm: expected {} at rip {:#x}, found {}", insn_op_name(expected), state.rip,
                   insn_op_name(insn->op));
        return 0;
    }
    return insn->length;
}

// The length of the instruction at CS:RIP if it is `expected`; 0 if it cannot be decoded or is
// something else (the guest changed its code under the exit).
inline u8 instruction_length(BackendVcpu& vcpu, const VcpuState& state, InsnOp expected) {
    u64 linear = state.cs_base + state.rip;
    u64 offset = linear & (kPageSize - 1);
    if (offset + kMaxInstructionLength <= kPageSize) {
        if (const u8* page = code_page(vcpu, linear - offset))
            if (u8 length = plain_length(page + offset, expected)) return length;
    }
    return decoded_length(vcpu, state, expected);
}

// Every case sets the kind and the union member it uses in full, so nothing is zeroed first.
inline VmExit decode_exit(BackendVcpu& vcpu, const VcpuState& state) {
    const VmcbControl& c = vcpu.vmcb->control;
    VmExit exit;
    exit.instruction_length = 0;
    exit.vendor_code = c.exit_code;
    auto with_length = [&](ExitKind kind, InsnOp op) __attribute__((always_inline)) {
        exit.kind = kind;
        exit.instruction_length = instruction_length(vcpu, state, op);
    };
    const u64 code = c.exit_code;
    switch (code) {
    case exit_code::cpuid: with_length(ExitKind::cpuid, InsnOp::cpuid); break;
    case exit_code::vmmcall: with_length(ExitKind::hypercall, InsnOp::vmmcall); break;
    case exit_code::hlt: with_length(ExitKind::hlt, InsnOp::hlt); break;
    case exit_code::msr:
        exit.msr.value = 0;
        if (c.exit_info_1 == 0) {
            with_length(ExitKind::msr_read, InsnOp::rdmsr);
        } else {
            with_length(ExitKind::msr_write, InsnOp::wrmsr);
            exit.msr.value = (state.reg(Gpr::rdx) << 32) | static_cast<u32>(state.reg(Gpr::rax));
        }
        exit.msr.index = static_cast<u32>(state.reg(Gpr::rcx));
        break;
    case exit_code::ioio: {
        const u64 info = c.exit_info_1;
        exit.kind = ExitKind::io;
        exit.io.port = static_cast<u16>(info >> ioio::port_shift);
        exit.io.size = (info & ioio::size32) ? 4 : (info & ioio::size16) ? 2 : 1;
        exit.io.direction = (info & ioio::type_in) ? IoDirection::in : IoDirection::out;
        exit.io.string = info & ioio::string;
        exit.io.rep = info & ioio::rep;
        u64 mask = exit.io.size == 4 ? 0xFFFFFFFF : exit.io.size == 2 ? 0xFFFF : 0xFF;
        exit.io.value = static_cast<u32>(state.reg(Gpr::rax) & mask);
        // EXITINFO2 holds the next RIP for IOIO exits even without NRIP save.
        u64 length = c.exit_info_2 - state.rip;
        if (state.mode == CpuMode::real16 || state.mode == CpuMode::protected16)
            length &= 0xFFFF;
        else if (state.mode == CpuMode::protected32)
            length &= 0xFFFFFFFF;
        exit.instruction_length = (length >= 1 && length <= kMaxInstructionLength) ? static_cast<u8>(length) : 0;
        break;
    }
    case exit_code::xsetbv:
        with_length(ExitKind::xsetbv, InsnOp::xsetbv);
        exit.xsetbv.index = static_cast<u32>(state.reg(Gpr::rcx));
        exit.xsetbv.value = (state.reg(Gpr::rdx) << 32) | static_cast<u32>(state.reg(Gpr::rax));
        break;
    case exit_code::vmrun: with_length(ExitKind::virtualization_instruction, InsnOp::vmrun); break;
    case exit_code::vmload: with_length(ExitKind::virtualization_instruction, InsnOp::vmload); break;
    case exit_code::vmsave: with_length(ExitKind::virtualization_instruction, InsnOp::vmsave); break;
    case exit_code::stgi: with_length(ExitKind::virtualization_instruction, InsnOp::stgi); break;
    case exit_code::clgi: with_length(ExitKind::virtualization_instruction, InsnOp::clgi); break;
    case exit_code::skinit: with_length(ExitKind::virtualization_instruction, InsnOp::skinit); break;
    case exit_code::invlpga: with_length(ExitKind::virtualization_instruction, InsnOp::invlpga); break;
    case exit_code::shutdown: exit.kind = ExitKind::triple_fault; break;
    case exit_code::intr:
    case exit_code::nmi:
    case exit_code::smi:
    case exit_code::init: exit.kind = ExitKind::external_interrupt; break;
    case exit_code::npf: {
        const u64 info = c.exit_info_1;
        exit.kind = ExitKind::nested_page_fault;
        exit.npf.guest_physical = c.exit_info_2;
        exit.npf.access = (info & npf::fetch)   ? MemoryAccess::execute
                          : (info & npf::write) ? MemoryAccess::write
                                                : MemoryAccess::read;
        exit.npf.present = info & npf::present;
        break;
    }
    case exit_code::invalid:
    case exit_code::invalid32: exit.kind = ExitKind::invalid_state; break;
    case exit_code::invd:
    case exit_code::wbinvd:
        // Either instruction for either exit: QEMU reports INVD as a WBINVD exit (it checks the
        // WBINVD intercept for both). The kernel completes both alike.
        with_length(ExitKind::cache_invalidate, code == exit_code::invd ? InsnOp::invd : InsnOp::wbinvd);
        if (!exit.instruction_length)
            exit.instruction_length =
                instruction_length(vcpu, state, code == exit_code::invd ? InsnOp::wbinvd : InsnOp::invd);
        break;
    // Both fault without completing: no length needed.
    case exit_code::rdpmc: exit.kind = ExitKind::performance_counter; break;
    case exit_code::monitor:
    case exit_code::mwait: exit.kind = ExitKind::monitor_wait; break;
    default:
        if (code >= exit_code::exception_base && code <= exit_code::exception_last) {
            exit.kind = ExitKind::exception;
            exit.exception.vector = static_cast<u8>(code - exit_code::exception_base);
            u8 v = exit.exception.vector;
            if (v == kVectorMc) {
                log::error("svm: machine check while a guest ran: the host's handler takes it");
                host_machine_check();
                exit.kind = ExitKind::external_interrupt;  // the host had the CPU; the guest goes on
                break;
            }
            exit.exception.has_error_code = v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
            exit.exception.error_code = static_cast<u32>(c.exit_info_1);
        } else {
            exit.kind = ExitKind::unknown;
        }
        break;
    }
    return exit;
}

// After an INTR exit the interrupt is still pending: a moment with interrupts open lets the host
// take it (the timer's handler acknowledges it).
void take_pending_interrupt() { asm volatile("sti; nop; cli" ::: "memory"); }

// Arms or stops the APIC timer for the slice `vcpu` is about to run. A slice spans every run of
// this vCPU until it expires: arming the APIC on each entry would put two MMIO writes on every
// exit's path, so this runs only when the owner or the limit changes. Another vCPU's registers
// can be in the CPU only then: slice_owner is set only here, to the vCPU about to run, so it
// still names this one only if no other vCPU ran since. Its guest context is loaded here too.
[[gnu::noinline]] void switch_slice(BackendVcpu* vcpu, u64 time_slice) {
    guest_context_load(vcpu->context);
    if (time_slice) {
        lapic::arm_oneshot(time_slice);
        slice_owner = vcpu;
    } else if (slice_owner) {
        lapic::disarm();
        slice_owner = nullptr;
    }
}

// After an INTR exit: was it the end of the running vCPU's slice? Either way the interrupt is
// still pending: a moment with interrupts open lets the host take it (the timer's handler
// acknowledges it).
[[gnu::noinline]] bool interrupted(const BackendVcpu* vcpu) {
    bool preempted = slice_owner == vcpu && lapic::timer_expired();
    if (preempted) {
        lapic::disarm();
        slice_owner = nullptr;
    }
    take_pending_interrupt();
    return preempted;
}

// Runs the guest until its next exit. svm_world_switch keeps only RBP and RSP for its caller, and
// the asm statement names every other register as clobbered: the compiler saves the callee-saved
// ones once, in svm_run()'s frame, instead of the switch saving them again on every exit.
inline __attribute__((always_inline)) void enter_guest(paddr guest_vmcb, paddr vmload_state, u64* gprs) {
    u64 vmcb = guest_vmcb, vmload = vmload_state;
    asm volatile("call svm_world_switch"
                 : "+D"(vmcb), "+a"(vmload), "+d"(gprs)
                 :
                 : "rbx", "rcx", "rsi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory", "cc");
}

// The nested component switched between L1 and L2 (nested_context.hpp): the other VMCB becomes
// the active one. A pending event of the old one goes (an exit's EXITINTINFO went to L1 with the
// reflected exit); the new one's EVENTINJ is delivered. Each VMCB has its own code page (walking
// both again at every reflected exit was two fifths of the round trip; swapping one cache between
// them, a twentieth). L1's translations cannot change while L2 runs but through an unmap, which
// clears both (run_once); L2's do when the component asks for a TLB flush in the vmcb02 it built
// or gives it other nested tables.
[[gnu::noinline]] void switch_vmcb(BackendVcpu& vcpu) {
    NestedContext& n = vcpu.l2;
    n.switched = false;
    if (!n.run_l2) {
        vcpu.vmcb = n.vmcb01;
        vcpu.vmcb_pa = n.vmcb01_pa;
        vcpu.pending_event = 0;
        vcpu.code = &vcpu.codes[0];
        vcpu.parked_l2_root = n.vmcb02->control.nested_cr3;
        return;
    }
    const VmcbControl& c = n.vmcb02->control;
    vcpu.vmcb = n.vmcb02;
    vcpu.vmcb_pa = n.vmcb02_pa;
    vcpu.pending_event = c.event_inject & (kEventValid | 0xFFFFFFFF00000FFF);
    vcpu.code = &vcpu.codes[1];
    if (c.tlb_control != kTlbControlNothing || c.nested_cr3 != vcpu.parked_l2_root) vcpu.codes[1].host = nullptr;
}

// L0 unmapped part of the VM: a shadow nested table built from the old mapping may point at a
// frame that is no longer L1's. L2 runs on an empty root until the component rebuilds it.
[[gnu::noinline]] void stale_shadow(BackendVcpu& vcpu) {
    NestedContext& n = vcpu.l2;
    if (n.vmcb02->control.nested_cr3 == vcpu.vm->npt_root) return;  // L2 runs on L0's tables of L1
    n.shadow_stale = true;
    n.vmcb02->control.nested_cr3 = n.empty_npt_root;
}

// The kernel's state, the newest, into the VMCB about to run.
[[gnu::always_inline]] inline void write_state(const VcpuState& state, VmcbSave& save) {
    save.rip = state.rip;
    save.rflags = state.rflags | kRflagsReserved1;
    save.rax = state.reg(Gpr::rax);
    save.rsp = state.reg(Gpr::rsp);
    save.efer = state.efer | kEferSvme;  // VMRUN refuses a guest state without SVME
}

VmExit run_once(VcpuHandle vcpu, VcpuState& state, u64 time_slice) {
    if (!vcpu->nested) [[likely]] {
        write_state(state, vcpu->vmcb->save);
    } else {
        NestedContext& n = vcpu->l2;
        if (n.switched) switch_vmcb(*vcpu);
        // Right after a switch the state is the VMCB's already (nested_context.hpp).
        if (n.state_in_vmcb)
            n.state_in_vmcb = false;
        else
            write_state(state, vcpu->vmcb->save);
    }
    Vmcb& vmcb = *vcpu->vmcb;
    VmcbSave& save = vmcb.save;
    vmcb.control.event_inject = vcpu->pending_event;
    vcpu->pending_event = 0;
    if (vcpu->tlb_generation != vcpu->vm->tlb_generation) [[unlikely]] {
        if (vcpu->nested) stale_shadow(*vcpu);
        vcpu->tlb_generation = vcpu->vm->tlb_generation;
        vcpu->flush_tlb = true;
        vcpu->codes[0].host = nullptr;  // the code pages' frames may be someone else's now
        vcpu->codes[1].host = nullptr;
    }
    if (vcpu->flush_tlb) [[unlikely]] {
        vmcb.control.tlb_control = kTlbControlFlushAll;  // back to kTlbControlNothing after the run
        vcpu->flush_tlb = false;
    }
    if (slice_owner != vcpu || !time_slice) [[unlikely]]
        switch_slice(vcpu, time_slice);

    enter_guest(vcpu->vmcb_pa, vcpu->vmload_pa, state.gpr);

    vmcb.control.tlb_control = kTlbControlNothing;  // a flush is once; a store costs less than a test
    bool preempted = vmcb.control.exit_code == exit_code::intr && interrupted(vcpu);
    state.rip = save.rip;
    state.rflags = save.rflags;
    state.reg(Gpr::rax) = save.rax;
    state.reg(Gpr::rsp) = save.rsp;
    state.cr0 = save.cr0;
    state.efer = save.efer & ~kEferSvme;
    state.cs_base = save.cs.base;
    state.mode = mode_of(save);
    // An event whose delivery the exit interrupted is delivered again on the next entry.
    if (vmcb.control.exit_int_info & kEventValid) [[unlikely]]
        vcpu->pending_event = vmcb.control.exit_int_info;
    VmExit exit = decode_exit(*vcpu, state);
    if (preempted && exit.kind == ExitKind::external_interrupt) exit.kind = ExitKind::preemption;
    return exit;
}

void svm_inject_exception(VcpuHandle vcpu, u8 vector, bool has_error_code, u32 error_code);

// CR4 writes are intercepted so that a value the guest's CPU would refuse (a bit it lacks, such as
// VMXE, SMXE or an extended-state bit not offered, or a combination long mode forbids) gets the
// CPU's #GP(0) instead of reaching the VMCB, where the next VMRUN would fail as an invalid state.
// Without decode assists the MOV is decoded here: [REX] 0F 22 /r with the CR number in ModRM.reg
// and the source GPR in ModRM.rm.
bool emulate_cr4_write(BackendVcpu& vcpu, VcpuState& state) {
    u64 linear = state.cs_base + state.rip;
    u64 offset = linear & (kPageSize - 1);
    if (offset + 4 > kPageSize) return false;
    const u8* code = code_page(vcpu, linear - offset);
    if (!code) return false;
    code += offset;
    u8 rex = (state.mode == CpuMode::long64 && (code[0] & 0xF0) == 0x40) ? code[0] : 0;
    const u8* op = code + (rex ? 1 : 0);
    if (op[0] != 0x0F || op[1] != 0x22 || ((op[2] >> 3) & 7) != 4) return false;
    u64 value = state.gpr[(op[2] & 7) | ((rex & 1) << 3)];
    if (state.mode != CpuMode::long64) value &= 0xFFFFFFFF;
    const VmcbSave& s = vcpu.vmcb->save;
    if (cr4_write_faults(s.cr4, value, s.efer, s.cr3, guest_cr4_settable())) {
        svm_inject_exception(&vcpu, 13, true, 0);
        return true;
    }
    vcpu.vmcb->save.cr4 = value;
    vcpu.flush_tlb = true;  // paging controls changed
    vcpu.code->host = nullptr;
    state.rip += static_cast<u64>(op + 3 - code);
    return true;
}

// CR4 writes are the backend's business: they never reach the kernel.
VmExit svm_run(VcpuHandle vcpu, VcpuState& state, u64 time_slice) {
    for (;;) {
        VmExit exit = run_once(vcpu, state, time_slice);
        if (exit.vendor_code != exit_code::cr4_write) return exit;  // every other exit: one test
        // An L2's CR4 write exits only when L1 intercepts it: the nested component reflects it.
        bool l2 = vcpu->nested && vcpu->l2.run_l2;
        if (l2 || !emulate_cr4_write(*vcpu, state)) return exit;
    }
}

void svm_inject_exception(VcpuHandle vcpu, u8 vector, bool has_error_code, u32 error_code) {
    u64 event = vector | kEventTypeException | kEventValid;
    // Real mode pushes no error codes; VMRUN would refuse the injection.
    if (has_error_code && (vcpu->vmcb->save.cr0 & kCr0Pe))
        event |= kEventErrorCodeValid | (static_cast<u64>(error_code) << 32);
    vcpu->pending_event = event;
}

bool svm_inject_interrupt(VcpuHandle vcpu, const VcpuState& state, u8 vector) {
    // The nested component may have switched VMCBs since the last exit: judge the one that runs.
    if (vcpu->nested && vcpu->l2.switched) switch_vmcb(*vcpu);
    if (!(state.rflags & kRflagsIf) || (vcpu->pending_event & kEventValid)) return false;
    Vmcb& vmcb = *vcpu->vmcb;
    if (vmcb.control.interrupt_shadow & kInterruptShadow) {
        // The shadow covers the instruction after STI / MOV SS; once the kernel has stepped over
        // it (an emulated HLT after STI), it is over.
        if (vmcb.save.rip == state.rip) return false;
        vmcb.control.interrupt_shadow = 0;
    }
    vcpu->pending_event = vector | kEventTypeInterrupt | kEventValid;
    return true;
}

CpuidValues svm_host_cpuid(u32 leaf, u32 subleaf) {
    CpuidResult r = cpuid(leaf, subleaf);
    return {r.eax, r.ebx, r.ecx, r.edx};
}

// The CR4 of the VMCB that ran last: L2's own when the exit was L2's.
GuestXsaveControls svm_xsave_controls(VcpuHandle vcpu) {
    return {vcpu->vmcb->save.cr4, guest_context_xcr0(vcpu->context)};
}

void svm_set_xcr0(VcpuHandle vcpu, u64 xcr0) { guest_context_set_xcr0(vcpu->context, xcr0); }

constexpr VirtOps kSvmOps = {
    .name = "svm",
    .supported = svm_supported,
    .enable = svm_enable,
    .disable = svm_disable,
    .create_vm = svm_create_vm,
    .map = svm_map,
    .unmap = svm_unmap,
    .destroy_vm = svm_destroy_vm,
    .create_vcpu = svm_create_vcpu,
    .run = svm_run,
    .inject_exception = svm_inject_exception,
    .inject_interrupt = svm_inject_interrupt,
    .destroy_vcpu = svm_destroy_vcpu,
    .host_cpuid = svm_host_cpuid,
    .xsave_controls = svm_xsave_controls,
    .set_xcr0 = svm_set_xcr0,
};

}  // namespace

const VirtOps* svm_backend() { return &kSvmOps; }

}  // namespace nestor::virt
