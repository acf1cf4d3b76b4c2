// The AMD SVM backend: detection, enabling, VMCB set-up, nested paging, the MSRs a vCPU owns, the
// event windows, the run loop's entry and the decoding of every exit into a vendor-neutral VmExit.
// It serves the kernel through one constant VirtOps table (svm_backend()).
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
#include "nestor/x86/host_cpuid.hpp"
#include "nestor/x86/kernel_memory.hpp"
#include "nestor/x86/local_apic.hpp"
#include "nestor/x86/page_table_builder.hpp"
#include "nestor/x86/insn_decode.hpp"
#include "nestor/x86/svm/nested_hardware.hpp"
#include "nestor/x86/svm/svm_logic.hpp"
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
struct SvmVm {
    paddr self;
    paddr npt_root;
    paddr iopm_pa;
    paddr msrpm_pa;
    u32 vcpus;
    u64 tlb_generation;  // bumped by every unmap: vCPUs that saw an older one flush first
};
static_assert(sizeof(SvmVm) <= kPageSize);

// The host bytes of the guest code page the last decoded instruction came from. An unmap in the
// VM (a new TLB generation) forgets it: run_once() clears `host` when it sees one.
struct CodePageCache {
    u64 linear_page;
    u64 cr0, cr3, cr4;
    const u8* host;  // null: nothing cached
};

struct SvmVcpu;

// CR8 and the threshold of the kernel's that vmcb01 holds (load_task_priority).
struct TaskPriority {
    u8 cr8;
    u8 threshold;
    bool operator==(const TaskPriority&) const = default;
};

namespace {

// What the nested component gets of a vCPU of a nested domain (nested_hardware.hpp). Its
// operations change which VMCB runs at once, not at the next entry: what the kernel does between
// them and the entry (an interrupt it injects) is judged against the VMCB that will run.
class SvmNestedHardware final : public NestedHardware {
public:
    void enter_l2(VcpuState& state) override;
    void enter_l1(VcpuState& state) override;
    void reset_to_l1() override;
    void write_state(const VcpuState& state) override;
    void request_immediate_exit() override;

    NestedResources& allocated() { return resources_; }  // filled by prepare_nested()
    void mark_shadow_stale() { shadow_stale_ = true; }

    SvmVcpu* vcpu;
    paddr vmcb01_pa;
    paddr vmcb02_pa;
    bool immediate_exit;  // the next run's slice is a moment (request_immediate_exit)
};

}  // namespace

// An SVM vCPU behind the kernel's opaque handle. ASIDs are per vCPU: each has its own guest
// translations even when the VM's nested tables are shared.
struct SvmVcpu {
    paddr self;  // the frame holding this object
    SvmVm* vm;
    paddr vmcb_pa;  // the active VMCB: L1's own, or vmcb02 while the vCPU runs an L2
    Vmcb* vmcb;
    // Where the world switch VMLOADs and VMSAVEs the guest's FS, GS, TR, LDTR, KernelGsBase and
    // syscall MSRs: the vCPU's own VMCB, even while it runs an L2. A CPU keeps that state across
    // VMRUN and #VMEXIT, so L1 and its L2 share one copy (vmcb01's), and the nested component
    // never copies it between vmcb01 and vmcb02 (nested_hardware.hpp).
    paddr vmload_pa;
    u32 asid;
    bool flush_tlb;
    u64 tlb_generation;  // the VM's generation this vCPU's TLB reflects
    u64 pending_event;   // EVENTINJ for the next entry; 0: none (a queued event has kEventValid)
    Vmcb* vmcb01;        // the vCPU's own VMCB: `vmcb` but while an L2 runs
    // The event windows asked for and the NMI blocking the backend keeps (window::*): without vNMI
    // the CPU shows no NMI blocking, so, as KVM does, an injected NMI blocks the next until the
    // IRET that ends its handler has run.
    u8 windows;
    // The interrupt window asked for is open in vmcb02 for this run of L2 (open_l2_window).
    bool l2_window;
    u64 iret_rip;     // where the IRET that exited is (window::iret_seen)
    u64 step_rflags;  // the guest's TF and RF when single-stepping began (window::stepping)
    u64 step_dr6;     // and its DR6
    // The active VMCB's code page: codes[0] for the vCPU's own VMCB, codes[1] for vmcb02 while
    // it runs an L2. Each VMCB keeps its own across the other's run (switch_vmcb).
    CodePageCache* code;
    CodePageCache codes[2];
    paddr parked_l2_root;  // vmcb02's nested root when L2 last stopped running
    bool nested;           // created with InitialMode::nested: `l2` is allocated
    SvmNestedHardware l2;
    // The kernel keeps the guest's TPR (InitialMode::task_priority): CR8 goes between the VMCB
    // and VcpuState at every exit and entry. Else the guest's CR8 is only V_TPR, its own.
    bool syncs_task_priority;
    TaskPriority task_priority;
    // An MSR exit for EFER read CR0 and EFER into VcpuState (ExitHardware::msr_decoded): the next
    // entry loads EFER, which the kernel may have changed (an emulated WRMSR). Else VcpuState's
    // may be older than the VMCB's, which the guest changes without an exit (EFER.LMA), or, just
    // after a switch between L1 and L2 (read_state), the same.
    bool efer_in_state;
    // Extended state, XCR0 and DR0-DR3, which VMRUN leaves alone: L1 and its L2 share them, as
    // they share the CPU's.
    GuestContext context;
};
static_assert(sizeof(SvmVcpu) <= kPageSize);

namespace {

// The kernel's opaque handles (virt_ops.hpp) are this backend's own objects.
SvmVm* vm_of(VmHandle handle) { return reinterpret_cast<SvmVm*>(handle); }
SvmVcpu* vcpu_of(VcpuHandle handle) { return reinterpret_cast<SvmVcpu*>(handle); }
VmHandle handle_of(SvmVm* vm) { return reinterpret_cast<VmHandle>(vm); }
VcpuHandle handle_of(SvmVcpu* vcpu) { return reinterpret_cast<VcpuHandle>(vcpu); }

using namespace x86_regs;
constexpr u32 kMaxAsids = 64;

// SvmVcpu::windows.
namespace window {
constexpr u8 interrupt = 1u << 0;    // an interrupt window is asked for: V_IRQ with the VINTR intercept
constexpr u8 nmi = 1u << 1;          // an NMI window is asked for
constexpr u8 nmi_blocked = 1u << 2;  // an injected NMI's handler runs: the IRET intercept ends it
constexpr u8 iret_seen = 1u << 3;    // its IRET exited: NMIs are open once RIP has left it
constexpr u8 stepping = 1u << 4;     // single steps (TF) until the NMI window opens
}  // namespace window
constexpr u32 kVirtualInterrupt = int_ctl::v_irq | int_ctl::v_ign_tpr;
constexpr u64 kStepFlags = kRflagsTf | kRflagsRf;
constexpr u64 kCr8Max = 0xF;  // CR8's bits 63:4 are reserved

// Per-CPU state (one CPU so far). Constant-initialised.
bool svm_enabled = false;
paddr host_save_area = 0;  // VM_HSAVE_PA: where VMRUN keeps the host state
bool asid_used[kMaxAsids] = {};
const SvmVcpu* slice_owner = nullptr;  // whose time slice the APIC timer is counting

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

void svm_destroy_vm(VmHandle handle) {
    SvmVm* vm = vm_of(handle);
    if (!vm) return;
    ASSERT(vm->vcpus == 0);
    free_npt(vm->npt_root);
    free_frames(vm->iopm_pa, kIopmBytes);
    free_frames(vm->msrpm_pa, kMsrpmBytes);
    paddr self = vm->self;
    vm->~SvmVm();
    free_frame(self);
}

// The MSRs a vCPU owns reach the CPU without an exit: the world switch's VMLOAD and VMSAVE switch
// the segment bases and the SYSCALL and SYSENTER MSRs with the host's around every run, and the
// guest context TSC_AUX (the host uses none of them). PAT stays intercepted: the guest's is the
// VMCB's G_PAT (emulate_pat), which QEMU's TCG does not switch.
void pass_through_guest_msrs(u8* msrpm) {
    const u32 msrs[] = {kMsrFsBase, kMsrGsBase, kMsrKernelGsBase, kMsrStar,        kMsrLstar,
                        kMsrCstar,  kMsrSfmask, kMsrSysenterCs,   kMsrSysenterEsp, kMsrSysenterEip};
    for (u32 msr : msrs) msrpm::pass_through(msrpm, msr);
    if (guest_context_switches_tsc_aux()) msrpm::pass_through(msrpm, kMsrTscAux);
}

Result<VmHandle, VirtError> svm_create_vm() {
    if (!svm_enabled) return fail(VirtError::unsupported);
    paddr self = allocate_zeroed_frame_or_panic("SVM VM");
    SvmVm* vm = new (frame_pointer<void>(self)) SvmVm{};
    vm->self = self;
    vm->iopm_pa = allocate_contiguous_zeroed(kIopmBytes / kPageSize, "the I/O permission map");
    vm->msrpm_pa = allocate_contiguous_zeroed(kMsrpmBytes / kPageSize, "the MSR permission map");
    AllocatorTableMemory tables_memory = npt_memory();
    PageTableBuilder npt(tables_memory);
    if (!vm->iopm_pa || !vm->msrpm_pa || !npt.create_root()) {
        svm_destroy_vm(handle_of(vm));
        return fail(VirtError::out_of_memory);
    }
    vm->npt_root = npt.root();
    // Intercept every port and every MSR: the kernel decides each access, but for the MSRs the
    // vCPU owns.
    fill_bytes(frame_pointer<u8>(vm->iopm_pa), 0xFF, kIopmBytes);
    fill_bytes(frame_pointer<u8>(vm->msrpm_pa), 0xFF, kMsrpmBytes);
    pass_through_guest_msrs(frame_pointer<u8>(vm->msrpm_pa));
    return handle_of(vm);
}

// Nested walks are user accesses, so every mapping is user.
Status<VirtError> svm_map(VmHandle handle, const GuestMapping& m) {
    SvmVm* vm = vm_of(handle);
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

Status<VirtError> svm_unmap(VmHandle handle, u64 guest_physical, u64 size) {
    SvmVm* vm = vm_of(handle);
    AllocatorTableMemory tables_memory = npt_memory();
    PageTableBuilder npt(tables_memory);
    npt.use_root(vm->npt_root);
    auto unmapped = npt.unmap(guest_physical, size);
    vm->tlb_generation++;  // even a refused unmap may follow an earlier partial change: flush
    if (unmapped) return {};
    return fail(unmapped.error() == MapError::would_split_large_page ? VirtError::overlapping_mapping
                                                                     : VirtError::bad_guest);
}

void svm_destroy_vcpu(VcpuHandle handle) {
    SvmVcpu* vcpu = vcpu_of(handle);
    if (!vcpu) return;
    if (slice_owner == vcpu) {
        lapic::disarm();
        slice_owner = nullptr;
    }
    if (vcpu->nested) {
        const NestedResources& n = vcpu->l2.resources();
        free_frame(vcpu->l2.vmcb02_pa);
        free_frames(n.merged_iopm_pa, kIopmBytes);
        free_frames(n.merged_msrpm_pa, kMsrpmBytes);
        free_frame(n.empty_npt_root);
        if (n.l2_asid && n.l2_asid < kMaxAsids) asid_used[n.l2_asid] = false;
        vcpu->vmcb_pa = vcpu->l2.vmcb01_pa;  // the vCPU's own VMCB, whichever ran last
    }
    free_frame(vcpu->vmcb_pa);
    guest_context_destroy(vcpu->context);
    if (vcpu->asid < kMaxAsids) asid_used[vcpu->asid] = false;
    vcpu->vm->vcpus--;
    paddr self = vcpu->self;
    vcpu->~SvmVcpu();
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
    s.rflags = kRflagsFixed1;
    s.g_pat = kPatReset;
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

Status<VirtError> set_initial_state(Vmcb& vmcb, const InitialMode& initial) {
    switch (initial.mode) {
    case CpuMode::real16:
        set_real_mode_state(vmcb);
        vmcb.save.cs.selector = initial.real_mode_segment;
        vmcb.save.cs.base = u64{initial.real_mode_segment} << 4;
        return {};
    case CpuMode::protected32: set_protected32_state(vmcb); return {};
    case CpuMode::long64:
        if (!is_aligned(initial.cr3, kPageSize)) return fail(VirtError::bad_guest);
        set_long64_state(vmcb, initial.cr3);
        return {};
    case CpuMode::protected16: break;
    }
    return fail(VirtError::bad_guest);
}

void set_controls(SvmVcpu& vcpu) {
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
    c.int_ctl = int_ctl::v_intr_masking;  // the host's RFLAGS.IF gates physical interrupts
    c.nested_control = kNestedPagingEnable;
    c.nested_cr3 = vcpu.vm->npt_root;
    c.clean_bits = 0;
}

// What running an L2 needs (nested_hardware.hpp), allocated with the vCPU of a nested domain so
// that a VMRUN never waits for memory: vmcb02, a second ASID, the merged permission maps and an
// empty nested root.
Status<VirtError> prepare_nested(SvmVcpu& vcpu) {
    NestedResources& n = vcpu.l2.allocated();
    vcpu.nested = true;
    vcpu.l2.vcpu = &vcpu;
    n.vmcb01 = vcpu.vmcb;
    vcpu.l2.vmcb01_pa = vcpu.vmcb_pa;
    n.l2_asid = allocate_asid();
    if (!n.l2_asid) return fail(VirtError::out_of_asids);
    vcpu.l2.vmcb02_pa = allocate_contiguous_zeroed(1, "vmcb02");
    n.merged_iopm_pa = allocate_contiguous_zeroed(kIopmBytes / kPageSize, "L2's I/O permission map");
    n.merged_msrpm_pa = allocate_contiguous_zeroed(kMsrpmBytes / kPageSize, "L2's MSR permission map");
    n.empty_npt_root = allocate_contiguous_zeroed(1, "an empty nested root");
    if (!vcpu.l2.vmcb02_pa || !n.merged_iopm_pa || !n.merged_msrpm_pa || !n.empty_npt_root)
        return fail(VirtError::out_of_memory);
    n.vmcb02 = frame_pointer<Vmcb>(vcpu.l2.vmcb02_pa);
    n.l0_iopm = frame_pointer<u8>(vcpu.vm->iopm_pa);
    n.l0_msrpm = frame_pointer<u8>(vcpu.vm->msrpm_pa);
    n.merged_iopm = frame_pointer<u8>(n.merged_iopm_pa);
    n.merged_msrpm = frame_pointer<u8>(n.merged_msrpm_pa);
    n.mapping_generation = &vcpu.vm->tlb_generation;
    return {};
}

Result<VcpuHandle, VirtError> svm_create_vcpu(VmHandle handle, const InitialMode& initial, VcpuState& state) {
    SvmVm* vm = vm_of(handle);
    if (!svm_enabled || !vm) return fail(VirtError::unsupported);
    u32 asid = allocate_asid();
    if (!asid) return fail(VirtError::out_of_asids);
    paddr self = allocate_zeroed_frame_or_panic("SVM vCPU");
    SvmVcpu* vcpu = new (frame_pointer<void>(self)) SvmVcpu{};
    vcpu->self = self;
    vcpu->vm = vm;
    vm->vcpus++;
    vcpu->asid = asid;
    vcpu->vmcb_pa = allocate_zeroed_frame_or_panic("VMCB");
    vcpu->vmcb = frame_pointer<Vmcb>(vcpu->vmcb_pa);
    vcpu->vmload_pa = vcpu->vmcb_pa;
    vcpu->vmcb01 = vcpu->vmcb;
    vcpu->code = &vcpu->codes[0];
    vcpu->syncs_task_priority = initial.task_priority;
    if (!guest_context_create(vcpu->context, false, false)) {
        svm_destroy_vcpu(handle_of(vcpu));
        return fail(VirtError::out_of_memory);
    }
    if (auto set = set_initial_state(*vcpu->vmcb, initial); !set) {
        svm_destroy_vcpu(handle_of(vcpu));
        return fail(set.error());
    }
    set_controls(*vcpu);
    if (initial.nested) {
        if (auto prepared = prepare_nested(*vcpu); !prepared) {
            svm_destroy_vcpu(handle_of(vcpu));
            return fail(prepared.error());
        }
        if (initial.nested_hardware) *initial.nested_hardware = static_cast<NestedHardware*>(&vcpu->l2);
    }
    vcpu->flush_tlb = true;  // the ASID may hold stale translations of an earlier guest
    vcpu->tlb_generation = vm->tlb_generation;

    const Vmcb& vmcb = *vcpu->vmcb;
    state.cr0 = vmcb.save.cr0;
    state.efer = vmcb.save.efer & ~kEferSvme;
    state.mode = mode_of(vmcb.save);
    state.rflags = vmcb.save.rflags;
    state.cr8 = 0;
    state.cr8_threshold = 0;
    log::debug("svm: vCPU ASID {} VMCB {:#x} NPT {:#x}", asid, vcpu->vmcb_pa, vm->npt_root);
    return handle_of(vcpu);
}

// Guest-physical memory through the VM's nested tables.
class NestedMemory final : public GuestPhysicalReader {
public:
    // Through the active VMCB's nested tables: L0's tables of the VM, or while an L2 runs those
    // vmcb02 uses (L0's tables of L1, or the shadow of L1's tables: the same format).
    explicit NestedMemory(const SvmVcpu& vcpu) : tables_memory_(npt_memory()), npt_(tables_memory_) {
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
usize read_guest_code(SvmVcpu& vcpu, u64 linear, u8* out, usize size) {
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
[[gnu::noinline]] const u8* walk_code_page(SvmVcpu& vcpu, u64 linear_page) {
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

// The cached page, or nullptr if the cache does not hold `linear_page` under today's paging.
inline const u8* cached_code_page(const SvmVcpu& vcpu, u64 linear_page) {
    const VmcbSave& s = vcpu.vmcb->save;
    const CodePageCache& c = *vcpu.code;
    if (c.host && c.linear_page == linear_page && c.cr3 == s.cr3 && c.cr0 == s.cr0 && c.cr4 == s.cr4) return c.host;
    return nullptr;
}

inline const u8* code_page(SvmVcpu& vcpu, u64 linear_page) {
    if (const u8* page = cached_code_page(vcpu, linear_page)) return page;
    return walk_code_page(vcpu, linear_page);
}

// The full decode: prefixes, an instruction crossing into the next page, or a page not cached.
[[gnu::noinline]] u8 decoded_length(SvmVcpu& vcpu, const VcpuState& state, InsnOp expected) {
    u8 bytes[kMaxInstructionLength];
    u64 linear = vcpu.vmcb->save.cs.base + state.rip;
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
inline u8 instruction_length(SvmVcpu& vcpu, const VcpuState& state, InsnOp expected) {
    u64 linear = vcpu.vmcb->save.cs.base + state.rip;
    u64 offset = linear & (kPageSize - 1);
    if (offset + kMaxInstructionLength <= kPageSize) {
        if (const u8* page = code_page(vcpu, linear - offset))
            if (u8 length = plain_length(page + offset, expected)) return length;
    }
    return decoded_length(vcpu, state, expected);
}

// What decode_exit (svm_logic.hpp) needs of the guest's memory and of the CPU.
struct ExitHardware {
    SvmVcpu& vcpu;
    VcpuState& state;
    [[gnu::always_inline]] u8 instruction_length(InsnOp expected) {
        return virt::instruction_length(vcpu, state, expected);
    }
    [[gnu::noinline]] void machine_check() {
        log::error("svm: machine check while a guest ran: the host's handler takes it");
        host_machine_check();
    }
    [[gnu::always_inline]] void msr_decoded(VmExit& exit);
};

// After an INTR exit the interrupt is still pending: a moment with interrupts open lets the host
// take it (the timer's handler acknowledges it).
void take_pending_interrupt() { asm volatile("sti; nop; cli" ::: "memory"); }

// Arms or stops the APIC timer for the slice `vcpu` is about to run. A slice spans every run of
// this vCPU until it expires: arming the APIC on each entry would put two MMIO writes on every
// exit's path, so this runs only when the owner or the limit changes. Another vCPU's registers
// can be in the CPU only then: slice_owner is set only here, to the vCPU about to run, so it
// still names this one only if no other vCPU ran since. Its guest context is loaded here too.
[[gnu::noinline]] void switch_slice(SvmVcpu* vcpu, u64 time_slice) {
    guest_context_load(vcpu->context);
    if (vcpu->l2.immediate_exit) [[unlikely]] {
        vcpu->l2.immediate_exit = false;
        time_slice = 1;  // expires while GIF is clear: the INTR exit comes after EVENTINJ's delivery
    }
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
[[gnu::noinline]] bool interrupted(const SvmVcpu* vcpu) {
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

// L0 unmapped part of the VM: a shadow nested table built from the old mapping may point at a
// frame that is no longer L1's. L2 runs on an empty root until the component rebuilds it.
[[gnu::noinline]] void stale_shadow(SvmVcpu& vcpu) {
    Vmcb& vmcb02 = *vcpu.l2.resources().vmcb02;
    if (vmcb02.control.nested_cr3 == vcpu.vm->npt_root) return;  // L2 runs on L0's tables of L1
    vcpu.l2.mark_shadow_stale();
    vmcb02.control.nested_cr3 = vcpu.l2.resources().empty_npt_root;
}

// The kernel's state, the newest, into the VMCB about to run: what every exit may change. EFER
// only when VcpuState holds the VMCB's (SvmVcpu::efer_in_state): write_efer.
[[gnu::always_inline]] inline void write_state(const VcpuState& state, VmcbSave& save) {
    save.rip = state.rip;
    save.rflags = state.rflags | kRflagsFixed1;
    save.rax = state.reg(Gpr::rax);
    save.rsp = state.reg(Gpr::rsp);
}

inline void write_efer(const VcpuState& state, VmcbSave& save) {
    save.efer = state.efer | kEferSvme;  // VMRUN refuses a guest state without SVME
}

// What every exit's handling reads of the VMCB's state, as the kernel's. CR0 and EFER only the
// EFER MSR's emulation needs (ExitHardware::msr_decoded).
[[gnu::always_inline]] inline void read_exit_state(const VmcbSave& save, VcpuState& state) {
    state.rip = save.rip;
    state.rflags = save.rflags;
    state.reg(Gpr::rax) = save.rax;
    state.reg(Gpr::rsp) = save.rsp;
    state.mode = mode_of(save);
}

[[gnu::always_inline]] inline void read_control_state(const VmcbSave& save, VcpuState& state) {
    state.cr0 = save.cr0;
    state.efer = save.efer & ~kEferSvme;
}

// An MSR exit for EFER: the kernel emulates it from VcpuState, and the next entry loads what it
// wrote. Other MSRs leave both alone, so their next entry has no EFER to load (an x2APIC EOI is
// an MSR exit after every interrupt). PAT is the backend's while L1 runs (emulate_pat): its exit
// decodes as unknown, which svm_run already tests for every exit.
[[gnu::always_inline]] inline void ExitHardware::msr_decoded(VmExit& exit) {
    if (exit.msr.index == kMsrEfer) [[unlikely]] {
        read_control_state(vcpu.vmcb->save, state);
        vcpu.efer_in_state = true;
    } else if (exit.msr.index == kMsrPat && vcpu.vmcb == vcpu.vmcb01) [[unlikely]] {
        exit.kind = ExitKind::unknown;
    }
}

// The VMCB's state in full, after a switch between L1 and L2, as the kernel's. The VMCB holds the
// EFER read here: the next entry loads it only if an emulated WRMSR changes it (msr_decoded).
[[gnu::always_inline]] inline void read_state(SvmVcpu& vcpu, const VmcbSave& save, VcpuState& state) {
    read_exit_state(save, state);
    read_control_state(save, state);
    vcpu.efer_in_state = false;
}

// vmcb02 becomes the active VMCB. A pending event of L1's goes; vmcb02's EVENTINJ is delivered.
// Each VMCB has its own code page (walking both again at every reflected exit was two fifths of
// the round trip; swapping one cache between them, a twentieth). L1's translations cannot change
// while L2 runs but through an unmap, which clears both (run_once); L2's do when the component
// asks for a TLB flush in the vmcb02 it built or gives it other nested tables.
void SvmNestedHardware::enter_l2(VcpuState& state) {
    SvmVcpu& v = *vcpu;
    const VmcbControl& c = resources_.vmcb02->control;
    running_l2_ = true;
    shadow_stale_ = false;  // vmcb02 was built under the current mapping generation
    v.vmcb = resources_.vmcb02;
    v.vmcb_pa = vmcb02_pa;
    v.pending_event = c.event_inject & event::defined_bits;
    v.code = &v.codes[1];
    if (c.tlb_control != kTlbControlNothing || c.nested_cr3 != v.parked_l2_root) v.codes[1].host = nullptr;
    read_state(v, resources_.vmcb02->save, state);
}

// vmcb01 becomes the active VMCB again, without a pending event (an exit's EXITINTINFO went to L1
// with the reflected exit).
void SvmNestedHardware::reset_to_l1() {
    if (!running_l2_) return;
    SvmVcpu& v = *vcpu;
    running_l2_ = false;
    v.vmcb = resources_.vmcb01;
    v.vmcb_pa = vmcb01_pa;
    v.pending_event = 0;
    immediate_exit = false;
    v.code = &v.codes[0];
    v.parked_l2_root = resources_.vmcb02->control.nested_cr3;
}

void SvmNestedHardware::enter_l1(VcpuState& state) {
    reset_to_l1();
    read_state(*vcpu, resources_.vmcb01->save, state);
}

// The slice ends at once: no slice owner, so the next run arms the timer (switch_slice).
void SvmNestedHardware::request_immediate_exit() {
    immediate_exit = true;
    slice_owner = nullptr;
}

void SvmNestedHardware::write_state(const VcpuState& state) {
    virt::write_state(state, vcpu->vmcb->save);
    if (vcpu->efer_in_state) write_efer(state, vcpu->vmcb->save);
}

// The interrupt shadow covers the instruction after STI / MOV SS; once the kernel has stepped over
// it (an emulated HLT after STI), it is over.
bool shadow_over(Vmcb& vmcb, const VcpuState& state) {
    if (!(vmcb.control.interrupt_shadow & kInterruptShadow)) return true;
    if (vmcb.save.rip == state.rip) return false;
    vmcb.control.interrupt_shadow = 0;
    return true;
}

// An NMI handler's IRET that exited has run once RIP has left it: NMIs are open again.
void note_iret_progress(SvmVcpu& v, const VcpuState& state) {
    if ((v.windows & window::iret_seen) && state.rip != v.iret_rip)
        v.windows &= ~(window::iret_seen | window::nmi_blocked);
}

// Whether the next entry of vmcb01 can deliver an NMI: no NMI handler running, no event queued,
// no interrupt shadow on the instruction at state.rip.
bool nmi_injectable(SvmVcpu& v, const VcpuState& state) {
    note_iret_progress(v, state);
    if ((v.windows & window::nmi_blocked) || (v.pending_event & event::valid)) return false;
    return shadow_over(*v.vmcb, state);
}

// The kernel's state into vmcb01, with what ends the run when a window it asked for opens: V_IRQ
// and the VINTR intercept for an interrupt window; for an NMI window the IRET intercept while the
// NMI handler's IRET has not exited, else single steps (an IRET that has not run yet, an event
// being delivered, a shadow: any instruction may open it). All of it is for this run only
// (close_windows), so that the nested component never finds it among L1's controls when it
// builds an L2's VMCB. False: the NMI window is open now, and the run ends before it begins.
[[gnu::noinline]] bool open_windows(SvmVcpu& v, const VcpuState& state) {
    bool open = false, step = false;
    if (v.windows & window::nmi) {
        open = nmi_injectable(v, state);
        step = !open && (!(v.windows & window::nmi_blocked) || (v.windows & window::iret_seen));
    } else {
        note_iret_progress(v, state);
    }
    if (!step) v.windows &= ~window::stepping;
    if (open) return false;
    write_state(state, v.vmcb->save);
    VmcbControl& c = v.vmcb->control;
    if (v.windows & window::interrupt) {
        c.int_ctl |= kVirtualInterrupt;
        c.intercept_misc1 |= intercept1::vintr;
    }
    if ((v.windows & (window::nmi_blocked | window::iret_seen)) == window::nmi_blocked)
        c.intercept_misc1 |= intercept1::iret;
    if (step) {
        if (!(v.windows & window::stepping)) {
            v.step_rflags = state.rflags & kStepFlags;
            v.step_dr6 = v.vmcb->save.dr6;
            v.windows |= window::stepping;
        }
        v.vmcb->save.rflags |= kStepFlags;
    }
    return true;
}

// After a run of vmcb01 open_windows prepared: its intercepts go, and the kernel sees the guest's
// own TF and RF, not the single step's.
void close_windows(SvmVcpu& v, VcpuState& state) {
    VmcbControl& c = v.vmcb->control;
    c.int_ctl &= ~kVirtualInterrupt;
    c.intercept_misc1 &= ~(intercept1::vintr | intercept1::iret);
    if (v.windows & window::stepping) state.rflags &= ~(kStepFlags & ~v.step_rflags);
}

// While L2 runs, the interrupt window asked for is L2's: an interrupt of L1's that L1 lets L2 take
// (or takes by #VMEXIT(INTR) without V_INTR_MASKING) waits for L2's IF. V_IRQ and the VINTR
// intercept in vmcb02 for this run only, unless L1 uses them itself (its own virtual interrupt
// for L2): the interrupt then waits for L2's next exit. The component routes the VINTR exit to
// the kernel, as L1 does not intercept it.
void open_l2_window(SvmVcpu& v) {
    VmcbControl& c = v.vmcb->control;
    if (!(v.windows & window::interrupt) || (c.int_ctl & int_ctl::v_irq) || (c.intercept_misc1 & intercept1::vintr))
        return;
    c.int_ctl |= kVirtualInterrupt;
    c.intercept_misc1 |= intercept1::vintr;
    v.l2_window = true;
}

void close_l2_window(SvmVcpu& v) {
    VmcbControl& c = v.vmcb->control;
    c.int_ctl &= ~kVirtualInterrupt;
    c.intercept_misc1 &= ~intercept1::vintr;
    v.l2_window = false;
}

TaskPriority task_priority_of(const VcpuState& state) { return {state.cr8, state.cr8_threshold}; }

// Whether the kernel changed CR8 or the threshold since they were loaded: one 16-bit compare, as
// it comes before every entry of a PC domain's vCPU.
[[gnu::always_inline]] inline bool task_priority_changed(const VcpuState& state, const TaskPriority& loaded) {
    static_assert(__builtin_offsetof(VcpuState, cr8_threshold) == __builtin_offsetof(VcpuState, cr8) + 1 &&
                  sizeof(TaskPriority) == 2);
    u16 now = 0, then = 0;
    __builtin_memcpy(&now, reinterpret_cast<const u8*>(&state) + __builtin_offsetof(VcpuState, cr8), sizeof(now));
    __builtin_memcpy(&then, &loaded, sizeof(then));
    return then != now;
}

// With V_INTR_MASKING the guest's CR8 is V_TPR, and the host's TPR stays its own. A threshold
// makes CR8 writes exit (emulate_cr8_write): the CPU compares no TPR with a pending interrupt
// that EVENTINJ has not injected yet. Both are L1's, in vmcb01 even while an L2 runs (which has
// a CR8 of its own in vmcb02), and loaded only when the kernel changed them.
[[gnu::noinline]] void load_task_priority(SvmVcpu& vcpu, const VcpuState& state) {
    VmcbControl& c = vcpu.vmcb01->control;
    c.int_ctl = (c.int_ctl & ~int_ctl::v_tpr) | state.cr8;
    c.intercept_cr = state.cr8_threshold ? kInterceptCr4Write | kInterceptCr8Write : kInterceptCr4Write;
    vcpu.task_priority = task_priority_of(state);
}

// A run that ends before VMRUN: the NMI window is open.
[[gnu::noinline]] VmExit nmi_window_open() {
    VmExit exit{};
    exit.kind = ExitKind::nmi_window;
    exit.vendor_code = exit_code::nmi;  // no VMRUN: the code of what the window is for
    return exit;
}

// Windows (open_windows) are closed again by svm_run, before the kernel sees the exit.
VmExit run_once(SvmVcpu* vcpu, VcpuState& state, u64 time_slice) {
    Vmcb& vmcb = *vcpu->vmcb;
    VmcbSave& save = vmcb.save;
    if (vcpu->windows) [[unlikely]] {
        if (&vmcb == vcpu->vmcb01) {
            if (!open_windows(*vcpu, state)) return nmi_window_open();
        } else {
            write_state(state, save);
            open_l2_window(*vcpu);
        }
    } else {
        write_state(state, save);
    }
    if (vcpu->efer_in_state) [[unlikely]] {
        write_efer(state, save);
        vcpu->efer_in_state = false;
    }
    bool task_priority = vcpu->syncs_task_priority;
    if (task_priority && task_priority_changed(state, vcpu->task_priority)) [[unlikely]]
        load_task_priority(*vcpu, state);
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
    read_exit_state(save, state);
    if (task_priority) state.cr8 = vcpu->task_priority.cr8 = static_cast<u8>(vcpu->vmcb01->control.int_ctl & kCr8Max);
    // An event whose delivery the exit interrupted is delivered again on the next entry.
    if (vmcb.control.exit_int_info & event::valid) [[unlikely]]
        vcpu->pending_event = vmcb.control.exit_int_info;
    ExitHardware hardware{*vcpu, state};
    VmExit exit = decode_exit(vmcb.control, state, hardware);
    // Only an INTR exit is preempted, which decodes as ExitKind::external_interrupt.
    if (preempted) [[unlikely]]
        exit.kind = ExitKind::preemption;
    return exit;
}

void svm_inject_exception(VcpuHandle handle, u8 vector, bool has_error_code, u32 error_code);

// The MOV to control register `cr` that exited, decoded from the guest's code (no decode assists).
bool decode_cr_write(SvmVcpu& vcpu, const VcpuState& state, u8 cr, MovToCr& mov) {
    u64 linear = vcpu.vmcb->save.cs.base + state.rip;
    u64 offset = linear & (kPageSize - 1);
    if (offset + 5 > kPageSize) return false;
    const u8* code = code_page(vcpu, linear - offset);
    return code && decode_mov_to_cr(code + offset, state.mode, state.gpr, mov) && mov.cr == cr;
}

// CR4 writes are intercepted so that a value the guest's CPU would refuse (a bit it lacks, such as
// VMXE, SMXE or an extended-state bit not offered, or a combination long mode forbids) gets the
// CPU's #GP(0) instead of reaching the VMCB, where the next VMRUN would fail as an invalid state.
bool emulate_cr4_write(SvmVcpu& vcpu, VcpuState& state) {
    MovToCr mov{};
    if (!decode_cr_write(vcpu, state, 4, mov)) return false;
    const VmcbSave& s = vcpu.vmcb->save;
    if (cr4_write_faults(s.cr4, mov.value, s.efer, s.cr3, guest_cr4_settable())) {
        svm_inject_exception(handle_of(&vcpu), 13, true, 0);
        return true;
    }
    vcpu.vmcb->save.cr4 = mov.value;
    vcpu.flush_tlb = true;  // paging controls changed
    vcpu.code->host = nullptr;
    state.rip += mov.length;
    return true;
}

// CR8 writes exit only while the kernel has a threshold (load_task_priority): the value becomes
// the guest's CR8 (V_TPR) as without the intercept, and one below the threshold ends the run as
// ExitKind::task_priority, for the kernel to deliver what the TPR held back. Bits 63:4 are
// reserved (#GP).
bool emulate_cr8_write(SvmVcpu& vcpu, VcpuState& state, VmExit& exit) {
    MovToCr mov{};
    if (!decode_cr_write(vcpu, state, 8, mov)) return false;
    if (mov.value > kCr8Max) {
        svm_inject_exception(handle_of(&vcpu), 13, true, 0);
        return true;
    }
    state.cr8 = static_cast<u8>(mov.value);
    state.rip += mov.length;
    if (state.cr8 >= state.cr8_threshold) return true;
    exit.kind = ExitKind::task_priority;
    return false;
}

// The guest's PAT is the VMCB's G_PAT, which the CPU uses under nested paging; a write with a
// memory type the SDM does not define #GPs. The exit decoded as unknown (ExitHardware::
// msr_decoded): EXITINFO1 says whether it was WRMSR.
bool emulate_pat(SvmVcpu& vcpu, VcpuState& state, const VmExit& exit) {
    if (exit.msr.index != kMsrPat || !exit.instruction_length) return false;
    VmcbSave& s = vcpu.vmcb->save;
    if (vcpu.vmcb->control.exit_info_1 != 0) {
        if (!pat_is_valid(exit.msr.value)) {
            svm_inject_exception(handle_of(&vcpu), 13, true, 0);
            return true;
        }
        s.g_pat = exit.msr.value;
    } else {
        state.reg(Gpr::rax) = s.g_pat & 0xFFFFFFFF;
        state.reg(Gpr::rdx) = s.g_pat >> 32;
    }
    u64 next = state.rip + exit.instruction_length;
    state.rip = state.mode == CpuMode::long64        ? next
                : state.mode == CpuMode::protected32 ? next & 0xFFFFFFFF
                                                     : next & 0xFFFF;
    return true;
}

// The IRET that ends an injected NMI's handler exited before it ran: it runs at the next entry,
// and NMIs are open once RIP has left it (with an NMI window asked for, one single step says).
bool iret_exited(SvmVcpu& vcpu, const VcpuState& state) {
    vcpu.windows |= window::iret_seen;
    vcpu.iret_rip = state.rip;
    return true;
}

// A #DB is the backend's when it is a single step towards an NMI window the guest did not ask for
// (its TF was clear): the guest's DR6 is put back, and the next run looks at the window again.
bool own_single_step(SvmVcpu& vcpu) {
    if (!(vcpu.windows & window::stepping) || (vcpu.step_rflags & kRflagsTf) || !(vcpu.vmcb->save.dr6 & kDr6Bs))
        return false;
    vcpu.vmcb->save.dr6 = vcpu.step_dr6;
    vcpu.windows &= ~window::stepping;
    return true;
}

// An exit of vmcb01 that may be the backend's own business; false: the kernel's. (An L2's exits of
// these kinds are L1's, which the nested component reflects, or the kernel's.)
[[gnu::noinline]] bool handled_here(SvmVcpu& vcpu, VcpuState& state, VmExit& exit) {
    if (vcpu.vmcb != vcpu.vmcb01) {
        if (vcpu.l2_window) close_l2_window(vcpu);
        return false;
    }
    if (vcpu.windows) close_windows(vcpu, state);
    switch (exit.vendor_code) {
    case exit_code::cr4_write: return emulate_cr4_write(vcpu, state);
    case exit_code::cr8_write: return emulate_cr8_write(vcpu, state, exit);
    case exit_code::msr: return emulate_pat(vcpu, state, exit);
    case exit_code::iret: return (vcpu.windows & window::nmi_blocked) && iret_exited(vcpu, state);
    case exit_code::exception(kVectorDb): return own_single_step(vcpu);
    default: return false;
    }
}

// CR4 and CR8 writes, PAT, an NMI handler's IRET and the single steps towards an NMI window are
// the backend's business: they reach the kernel only as a CR8 write below the threshold. A few
// tests for every other exit (the CR writes and L1's PAT decode as unknown).
VmExit svm_run(VcpuHandle handle, VcpuState& state, u64 time_slice) {
    SvmVcpu* vcpu = vcpu_of(handle);
    for (;;) {
        VmExit exit = run_once(vcpu, state, time_slice);
        if (exit.kind != ExitKind::unknown && !vcpu->windows) [[likely]]
            return exit;
        if (!handled_here(*vcpu, state, exit)) return exit;
    }
}

void svm_inject_exception(VcpuHandle handle, u8 vector, bool has_error_code, u32 error_code) {
    SvmVcpu* vcpu = vcpu_of(handle);
    vcpu->pending_event = exception_event(vector, has_error_code, error_code, vcpu->vmcb->save.cr0 & kCr0Pe);
}

bool svm_inject_interrupt(VcpuHandle handle, const VcpuState& state, u8 vector) {
    SvmVcpu* vcpu = vcpu_of(handle);
    if (!(state.rflags & kRflagsIf) || (vcpu->pending_event & event::valid)) return false;
    if (!shadow_over(*vcpu->vmcb, state)) return false;
    vcpu->pending_event = interrupt_event(vector);
    return true;
}

// The NMIs and windows are L1's: while an L2 runs, the nested component decides what an NMI does
// first, and a window asked for takes effect when L1 runs again.
bool svm_inject_nmi(VcpuHandle handle, const VcpuState& state) {
    SvmVcpu* vcpu = vcpu_of(handle);
    if (vcpu->vmcb != vcpu->vmcb01 || !nmi_injectable(*vcpu, state)) return false;
    vcpu->pending_event = nmi_event();
    vcpu->windows = static_cast<u8>((vcpu->windows | window::nmi_blocked) & ~window::iret_seen);
    return true;
}

void svm_request_interrupt_window(VcpuHandle handle, bool on) {
    SvmVcpu* vcpu = vcpu_of(handle);
    vcpu->windows = static_cast<u8>(on ? vcpu->windows | window::interrupt : vcpu->windows & ~window::interrupt);
}

void svm_request_nmi_window(VcpuHandle handle, bool on) {
    SvmVcpu* vcpu = vcpu_of(handle);
    vcpu->windows =
        static_cast<u8>(on ? vcpu->windows | window::nmi : vcpu->windows & ~(window::nmi | window::stepping));
}

// vmcb02 runs an L2 with L0's offset plus its L1's (the nested component): it moves with L0's.
void svm_new_slice(VcpuHandle handle) {
    if (slice_owner == vcpu_of(handle)) slice_owner = nullptr;
}

void svm_set_tsc_offset(VcpuHandle handle, u64 offset) {
    SvmVcpu* vcpu = vcpu_of(handle);
    u64 change = offset - vcpu->vmcb01->control.tsc_offset;
    vcpu->vmcb01->control.tsc_offset = offset;
    if (vcpu->vmcb != vcpu->vmcb01) vcpu->vmcb->control.tsc_offset += change;
}

// The CR4 of the VMCB that ran last: L2's own when the exit was L2's.
GuestXsaveControls svm_xsave_controls(VcpuHandle handle) {
    SvmVcpu* vcpu = vcpu_of(handle);
    return {vcpu->vmcb->save.cr4, guest_context_xcr0(vcpu->context)};
}

void svm_set_xcr0(VcpuHandle handle, u64 xcr0) { guest_context_set_xcr0(vcpu_of(handle)->context, xcr0); }

// The code page not cached yet, or the bytes crossing into the next page.
[[gnu::noinline]] GuestCode guest_code_walked(SvmVcpu& vcpu, u64 linear, u8* scratch, usize size) {
    const u64 offset = linear & (kPageSize - 1);
    if (offset + size <= kPageSize)
        if (const u8* page = walk_code_page(vcpu, linear - offset)) return {page + offset, size};
    return {scratch, read_guest_code(vcpu, linear, scratch, size)};
}

// In place from the vCPU's code page when the bytes lie in it (an MMIO access's instruction,
// decoded at every such exit: two page walks would be most of its cost), else through both walks.
GuestCode svm_guest_code(VcpuHandle handle, const VcpuState& state, u8* scratch, usize size) {
    SvmVcpu* vcpu = vcpu_of(handle);
    const u64 linear = code_linear_address(vcpu->vmcb->save.cs.base, state.rip, state.mode == CpuMode::long64);
    const u64 offset = linear & (kPageSize - 1);
    if (offset + size <= kPageSize)
        if (const u8* page = cached_code_page(*vcpu, linear - offset)) return {page + offset, size};
    return guest_code_walked(*vcpu, linear, scratch, size);
}

constexpr VirtOps kSvmOps = {
    .name = "svm",
    .vendor = CpuVendor::amd,
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
    .request_interrupt_window = svm_request_interrupt_window,
    .inject_nmi = svm_inject_nmi,
    .request_nmi_window = svm_request_nmi_window,
    .set_tsc_offset = svm_set_tsc_offset,
    .new_slice = svm_new_slice,
    .destroy_vcpu = svm_destroy_vcpu,
    .host_cpuid = x86::host_cpuid,
    .xsave_controls = svm_xsave_controls,
    .set_xcr0 = svm_set_xcr0,
    .guest_code = svm_guest_code,
};

}  // namespace

const VirtOps* svm_backend() { return &kSvmOps; }

}  // namespace nestor::virt
