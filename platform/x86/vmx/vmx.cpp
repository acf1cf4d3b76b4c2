// The Intel VMX backend: detection against the capability MSRs, VMXON, one VMCS per vCPU, EPT
// with a VPID per VM, unrestricted guest (real-mode guests), I/O and MSR bitmaps that send every
// port and MSR to the kernel but the MSRs a vCPU owns, the VMX preemption timer for run()'s time
// slice, the event windows, and the decoding of every exit into a vendor-neutral VmExit
// (vmx_logic.cpp). It serves the kernel through one constant VirtOps table (vmx_backend()). VMCS
// details stay in this directory.
//
// Written for Bochs' VMX (corei7_* models) as well as hardware: CR0.NE is set before VMXON, the
// controls are computed from the TRUE_ capability MSRs where they exist, and every control is
// checked against its allowed-0/allowed-1 settings.
#include "nestor/arch/apic_regs.hpp"
#include "nestor/lib/placement_new.hpp"
#include "nestor/log.hpp"
#include "nestor/platform.hpp"
#include "nestor/virt/virt_ops.hpp"
#include "nestor/x86/cpu.hpp"
#include "nestor/x86/guest_context.hpp"
#include "nestor/x86/guest_walk.hpp"
#include "nestor/x86/host_cpuid.hpp"
#include "nestor/x86/kernel_memory.hpp"
#include "nestor/x86/vmx/ept.hpp"
#include "nestor/x86/vmx/nested_hardware.hpp"
#include "nestor/x86/vmx/vmcs.hpp"
#include "nestor/x86/vmx/vmx_logic.hpp"

// world_switch.S: enters the guest with the current VMCS (VMLAUNCH if !launched, else VMRESUME)
// and returns at its next exit: 0 after an exit, 1 for VMfailInvalid, 2 for VMfailValid.
extern "C" nestor::u64 vmx_world_switch(nestor::u64* guest_gprs, nestor::u64 launched);
extern "C" char vmx_exit_entry[];  // the host RIP of every VM exit

namespace nestor::virt {

using namespace nestor::x86;
using namespace nestor::x86::vmx;

// The VMX VM behind the kernel's opaque handle: EPT, VPID and the permission bitmaps. It lives in
// a frame of its own.
struct VmxVm {
    paddr self;
    paddr ept_root;
    u64 eptp;
    u16 vpid;  // 0 when VPIDs are not used
    u32 vcpus;
    paddr io_bitmap_a;  // ports 0x0000-0x7FFF
    paddr io_bitmap_b;  // ports 0x8000-0xFFFF
    paddr msr_bitmap;
    // Changed by every unmap (nested_hardware.hpp), and the first of the vCPUs that may run an L2
    // on a shadow EPT (each links the next: VmxVcpu::next_nested).
    u64 mapping_generation;
    struct VmxVcpu* nested_vcpus;
};
static_assert(sizeof(VmxVm) <= kPageSize);

struct VmxVcpu;

// The host bytes of the guest code page the last MMIO instruction was decoded from, with what
// they were found under: the VMCS, the guest's paging registers and the VM's mapping generation
// (an unmap changes it; the frame could then belong to someone else).
struct CodePageCache {
    u64 linear_page;
    paddr vmcs_pa;
    u64 cr0, cr3, cr4;
    u64 mapping_generation;
    const u8* host;  // null: nothing cached
};

// What differs between a vCPU's two VMCSs (vmcs01 for L1, vmcs02 for L2 of a nested domain): the
// fields of VmxVcpu that describe the VMCS that runs, swapped when the component switches.
struct VmcsLevel {
    paddr vmcs_pa;
    bool launched;
    u32 pin_controls;
    u32 primary_controls;
    u64 cr0_mask;
    u64 cr0_shadow;
    bool ia32e_mode;
};

// What the nested VMX component gets of a vCPU of a nested domain (nested_hardware.hpp). Its
// operations are defined with the rest of the backend, below.
class VmxNestedHardware final : public x86::vmx::NestedHardware {
public:
    void attach(VmxVcpu* vcpu) { vcpu_ = vcpu; }
    x86::vmx::NestedHardware* lent() { return this; }
    x86::vmx::InstructionExit instruction_exit() override;
    x86::vmx::GuestSegment segment(u32 index) override;
    u64 cr4() override;
    u64 interruptibility() override;
    LinearTranslation translate(u64 linear, u64 efer, bool write) override;
    void inject_exception(u8 vector, u32 error_code) override;
    void inject_page_fault(u64 linear, u32 error_code) override;
    u32 physical_address_bits() override;
    void pin_control_bits(u64 cr0, u64 cr4) override;
    const x86::vmx::L0Controls& l0_controls() override { return controls_; }
    u64 read(x86::vmx::Level level, u32 field) override;
    void write(x86::vmx::Level level, u32 field, u64 value) override;
    void read_fields(x86::vmx::Level level, const u32* fields, u64* values, usize count) override;
    void write_fields(x86::vmx::Level level, const u32* fields, const u64* values, usize count) override;
    bool write_ok() override { return writes_ok_; }
    void enter_l2(VcpuState& state, bool flush, const x86::vmx::L2TprShadow* tpr_shadow) override;
    void enter_l1(const x86::vmx::L1ControlState& control, VcpuState& state) override;
    void reset_to_l1() override;
    void write_state(const VcpuState& state) override;
    void use_l2_eptp(u64 eptp) override;
    u64 mapping_generation() override;
    void arm_l2_timer(u64 ticks) override;
    void disarm_l2_timer() override;
    void request_immediate_exit() override;
    u64 l2_timer_left() override;
    bool write_msr(x86::vmx::Level level, u32 index, u64 value) override;
    bool read_msr(x86::vmx::Level level, u32 index, u64& value) override;

    bool prepare(VmxVcpu* vcpu);  // allocates vmcs02 and the rest, with the vCPU
    void release();
    // The VM lost memory (`ept` is its EPT now): no shadow EPT of L2 may go on being used, nor a
    // virtual-APIC page of L1's that is gone.
    void l0_unmapped(const EptBuilder& ept);
    // While L2 runs, the kernel's event windows (VmxVcpu::windows) are L2's: an interrupt or NMI
    // of L1's that L1 lets L2 take (no external-interrupt / NMI exiting) waits for L2's IF or the
    // end of its NMI blocking, and would otherwise wait for L2's next exit. Into vmcs02 beside
    // L1's own window controls, whose exits stay L1's; the component routes the kernel's to the
    // kernel.
    void apply_kernel_windows();
    // While L2 runs with L1's TPR shadow for it, vmcs02's TPR threshold is L1's: L0's waits for
    // vmcs01.
    bool l2_tpr_shadow_is_l1s() const { return running_l2_ && l1_tpr_shadow_; }

private:
    bool use(x86::vmx::Level level);
    void write_failed(x86::vmx::Level level, u32 field);
    void swap_levels();

    VmxVcpu* vcpu_ = nullptr;
    VmcsLevel other_{};  // the level that does not run
    paddr vmcs01_pa_ = 0;
    paddr vmcs02_pa_ = 0;
    paddr empty_ept_root_ = 0;
    x86::vmx::L0Controls controls_{};
    bool writes_ok_ = true;
    // vmcs02 holds the host state and link pointer: the kernel's on its one CPU, written at the
    // first entry as vmcs01's is at the vCPU's creation.
    bool vmcs02_host_state_ = false;
    u32 l1_windows_ = 0;  // L1's interrupt- and NMI-window exiting in vmcs02, as the component wrote them
    // vmcs02's virtual-APIC page: vmcs01's (L2's CR8 is L1's) or, with L1's TPR shadow for L2,
    // L1's page at guest-physical l1_tpr_page_.
    paddr vmcs02_virtual_apic_ = 0;
    bool l1_tpr_shadow_ = false;
    u64 l1_tpr_page_ = 0;
};

// An image built with NESTED_VIRT=OFF accepts no nested domain (the null component refuses
// them): its vCPUs hold this instead of VmxNestedHardware, which is then not in the image, and
// no L2 ever runs. No vCPU of such an image is created for a nested domain.
class NoNestedHardware {
public:
    bool running_l2() const { return false; }
    [[noreturn]] bool prepare(VmxVcpu*) { ASSERT_UNREACHABLE(); }
    void release() {}
    void l0_unmapped(const EptBuilder&) {}
    void apply_kernel_windows() {}
    bool l2_tpr_shadow_is_l1s() const { return false; }
    x86::vmx::NestedHardware* lent() { return nullptr; }
};
template <bool kNested> struct NestedHardwareSlot {
    using Type = VmxNestedHardware;
};
template <> struct NestedHardwareSlot<false> {
    using Type = NoNestedHardware;
};
using VcpuNestedHardware = NestedHardwareSlot<NESTOR_OPT_NESTED_VIRT != 0>::Type;

// What vmcs02's VMX-preemption timer counts besides L0's slice (`active`: either, false on most
// runs, so that one test passes them by): L1's timer for L2 (NestedHardware::arm_l2_timer), in
// the host's TSC, `left` ticks to run until L2's first run after it was armed or after L0's slice
// ended first, then a deadline; and an immediate exit (NestedHardware::request_immediate_exit).
struct L2Timer {
    bool active;  // l1_armed || immediate_exit
    bool l1_armed;
    bool immediate_exit;
    bool counting;
    u64 left;
    u64 deadline;
};

struct VmxVcpu {
    paddr self;
    VmxVm* vm;
    paddr vmcs_pa;
    bool launched;
    bool flush_pending;    // INVEPT/INVVPID before the first entry
    u32 pin_controls;      // as last written
    u32 primary_controls;  // as last written (the event windows)
    // The event windows the kernel asked for (kWindowControls of the primary controls): vmcs01's;
    // while L2 runs vmcs02's too, beside its L1's own (VmxNestedHardware::apply_kernel_windows),
    // and vmcs01 gets them when it runs again.
    u32 windows;
    u64 tsc_offset;  // the domain's (the kernel's, set_tsc_offset), vmcs01's
    // What vmcs01 has not got yet of the windows, the TSC offset and the TPR threshold, set while
    // L2 ran (VmxNestedHardware::reset_to_l1 brings them).
    bool vmcs01_stale;
    bool event_pending;
    u32 pending_info;
    u32 pending_error_code;
    u32 pending_instruction_length;
    u64 cr0_mask;
    u64 cr0_shadow;
    bool save_efer;
    bool ia32e_mode;
    bool nested;  // the domain may set CR4.VMXE
    // While L1 is in VMX operation, the CR0 and CR4 bits it may not clear (pin_control_bits), and
    // those of pinned_cr0 that only the pin added to vmcs01's CR0 guest/host mask.
    u64 pinned_cr0;
    u64 pinned_cr4;
    u64 pinned_cr0_mask;
    u64 slice_end;  // TSC value at which its time slice ends, while it is slice_owner
    // The TPR shadow: the guest's CR8 is VTPR[7:4] in the virtual-APIC page (its only use here),
    // the host's TPR stays its own; the TPR threshold as last written.
    paddr virtual_apic_pa;
    volatile u8* vtpr;
    u8 tpr_threshold;
    // Extended state, XCR0, DR0-DR3 and DR6, which VM entry and exit leave alone. Loaded with the
    // VMCS (make_current).
    GuestContext context;
    VcpuNestedHardware nested_hardware;  // lent to the nested component when `nested`
    VmxVcpu* next_nested;                // the VM's next vCPU with nested hardware (VmxVm::nested_vcpus)
    L2Timer l2_timer;                    // used only while L2 runs
    CodePageCache code;
};
static_assert(sizeof(VmxVcpu) <= kPageSize);

namespace {

// The kernel's opaque handles (virt_ops.hpp) are this backend's own objects.
VmxVm* vm_of(VmHandle handle) { return reinterpret_cast<VmxVm*>(handle); }
VmxVcpu* vcpu_of(VcpuHandle handle) { return reinterpret_cast<VmxVcpu*>(handle); }
VmHandle handle_of(VmxVm* vm) { return reinterpret_cast<VmHandle>(vm); }
VcpuHandle handle_of(VmxVcpu* vcpu) { return reinterpret_cast<VcpuHandle>(vcpu); }

constexpr u32 kMaxVpids = 64;
constexpr u64 kInvalidLinkPointer = ~u64{0};
constexpr u64 kDr7Reset = 0x400;
constexpr u32 kVectorDf = 8;
constexpr usize kVtprOffset = apic_regs::kXapicTpr;    // VTPR: the TPR's place in the xAPIC page
constexpr paddr kNoVirtualApicPage = ~paddr{0} << 52;  // page-aligned, above every MAXPHYADDR

struct [[gnu::packed]] DescriptorPointer {
    u16 limit;
    u64 base;
};

// What this CPU offers, from the capability MSRs (read once by enable()).
struct Capabilities {
    u64 basic;
    u32 revision;
    u32 pin_with_timer;
    u32 pin_without_timer;
    u32 primary;
    u32 secondary;
    u32 exit;
    u32 entry;
    u64 entry_msr;  // to check IA-32e mode guest per vCPU
    CrFixed cr0;
    CrFixed cr4;
    u64 ept_vpid;
    u32 preemption_rate;        // the timer counts every 2^rate TSC ticks
    u32 physical_address_bits;  // MAXPHYADDR, CPUID 0x80000008 EAX[7:0]
    bool large_pages;
    bool vpid;
    bool load_efer;
    bool save_efer;
    bool pat;  // the guest's PAT loaded at entry and saved at exit, the host's loaded at exit
};

// Per-CPU state (one CPU so far). Constant-initialised.
Capabilities caps = {};
bool vmx_enabled = false;
paddr vmxon_region = 0;
u64 cr4_before_enable = 0;
paddr current_vmcs = 0;
DescriptorPointer host_gdtr = {};
DescriptorPointer host_idtr = {};
bool vpid_used[kMaxVpids] = {};
const VmxVcpu* slice_owner = nullptr;  // whose time slice is running (VmxVcpu::slice_end)

// --- VMX instructions. Each reports failure (VMfailInvalid: CF, VMfailValid: ZF) as false.
bool vmxon(paddr region) {
    bool failed;
    asm volatile("vmxon %1; setna %0" : "=q"(failed) : "m"(region) : "cc", "memory");
    return !failed;
}
void vmxoff() { asm volatile("vmxoff" ::: "cc", "memory"); }
bool vmclear(paddr vmcs) {
    bool failed;
    asm volatile("vmclear %1; setna %0" : "=q"(failed) : "m"(vmcs) : "cc", "memory");
    return !failed;
}
bool vmptrld(paddr vmcs) {
    bool failed;
    asm volatile("vmptrld %1; setna %0" : "=q"(failed) : "m"(vmcs) : "cc", "memory");
    return !failed;
}
bool vmwrite(u64 field, u64 value) {
    bool failed;
    asm volatile("vmwrite %2, %1; setna %0" : "=q"(failed) : "r"(field), "rm"(value) : "cc");
    return !failed;
}
u64 vmread(u64 field) {
    u64 value = 0;
    asm volatile("vmread %1, %0" : "=rm"(value) : "r"(field) : "cc");
    return value;
}
struct alignas(16) InvDescriptor {
    u64 first;
    u64 second;
};
void invept(u64 type, u64 eptp) {
    InvDescriptor d{eptp, 0};
    asm volatile("invept %0, %1" ::"m"(d), "r"(type) : "cc", "memory");
}
void invvpid(u64 type, u16 vpid) {
    InvDescriptor d{vpid, 0};
    asm volatile("invvpid %0, %1" ::"m"(d), "r"(type) : "cc", "memory");
}

// Writes a batch of VMCS fields, remembering the first that failed.
class VmcsWriter {
public:
    void operator()(u32 field, u64 value) {
        if (!vmwrite(field, value) && failed_field_ == kNone) failed_field_ = field;
    }
    bool ok() const { return failed_field_ == kNone; }
    u32 failed_field() const { return failed_field_; }

private:
    static constexpr u32 kNone = ~u32{0};
    u32 failed_field_ = kNone;
};

void free_frame(paddr frame) {
    if (!frame) return;
    auto freed = kernel_frames().free(frame);
    if (!freed) log::warn("vmx: freeing frame {:#x}: {}", frame, frame_error_name(freed.error()));
}

paddr allocate_frame(u8 fill) {
    auto frame = kernel_frames().allocate();
    if (!frame) return 0;
    fill_bytes(frame_pointer<u8>(*frame), fill, kPageSize);
    return *frame;
}

AllocatorTableMemory ept_memory() { return AllocatorTableMemory(kernel_frames(), kernel_physical_memory()); }

void flush_ept(u64 eptp) {
    if (!(caps.ept_vpid & ept_vpid_cap::invept)) return;
    if (caps.ept_vpid & ept_vpid_cap::invept_single_context)
        invept(kInveptSingleContext, eptp);
    else if (caps.ept_vpid & ept_vpid_cap::invept_all_context)
        invept(kInveptAllContext, 0);
}

void flush_vpid(u16 vpid) {
    if (!vpid) return;
    if (caps.ept_vpid & ept_vpid_cap::invvpid_single_context)
        invvpid(kInvvpidSingleContext, vpid);
    else
        invvpid(kInvvpidAllContext, 0);
}

const char* control_error_name(ControlError error) {
    return error == ControlError::not_allowed ? "a needed control is not allowed" : "inconsistent capability MSR";
}

bool vmx_supported() {
    const CpuFeatures& cpu = platform::cpu_features();
    return cpu.vmx && cpu.ept && cpu.unrestricted_guest;
}

// Reads the capability MSRs into `caps`; false (with a log line) if something needed is missing.
bool read_capabilities() {
    Capabilities c{};
    c.basic = rdmsr(vmx_msr::vmx_basic);
    c.revision = static_cast<u32>(c.basic & basic::revision_mask);
    u64 region_size = (c.basic >> basic::region_size_shift) & basic::region_size_mask;
    if (region_size == 0 || region_size > kPageSize) {
        log::error("vmx: VMCS region size {} does not fit a page", region_size);
        return false;
    }
    u64 pin_msr = rdmsr(control_msr(c.basic, vmx_msr::vmx_pinbased_ctls, vmx_msr::vmx_true_pinbased_ctls));
    u64 primary_msr = rdmsr(control_msr(c.basic, vmx_msr::vmx_procbased_ctls, vmx_msr::vmx_true_procbased_ctls));
    u64 exit_msr = rdmsr(control_msr(c.basic, vmx_msr::vmx_exit_ctls, vmx_msr::vmx_true_exit_ctls));
    c.entry_msr = rdmsr(control_msr(c.basic, vmx_msr::vmx_entry_ctls, vmx_msr::vmx_true_entry_ctls));
    u64 secondary_msr =
        controls_allowed(primary_msr, primary::activate_secondary) ? rdmsr(vmx_msr::vmx_procbased_ctls2) : 0;
    c.ept_vpid = rdmsr(vmx_msr::vmx_ept_vpid_cap);

    struct Want {
        const char* name;
        u32 bits;
        u64 msr;
        u32* out;
    };
    // WBINVD exiting: a guest must not flush the shared caches (exit_handler.cpp).
    u32 secondary_wanted = secondary::enable_ept | secondary::unrestricted_guest | secondary::wbinvd_exiting;
    c.vpid = controls_allowed(secondary_msr, secondary::enable_vpid) && (c.ept_vpid & ept_vpid_cap::invvpid) &&
             (c.ept_vpid & (ept_vpid_cap::invvpid_single_context | ept_vpid_cap::invvpid_all_context));
    if (c.vpid) secondary_wanted |= secondary::enable_vpid;
    // Instructions the guest may use as on the host: without these controls they would #UD.
    const u32 optional[] = {secondary::enable_rdtscp, secondary::enable_invpcid};
    for (u32 bit : optional)
        if (controls_allowed(secondary_msr, bit)) secondary_wanted |= bit;
    c.load_efer =
        controls_allowed(exit_msr, exit_ctl::load_efer) && controls_allowed(c.entry_msr, entry_ctl::load_efer);
    c.save_efer = c.load_efer && controls_allowed(exit_msr, exit_ctl::save_efer);
    c.pat = controls_allowed(exit_msr, exit_ctl::save_pat | exit_ctl::load_pat) &&
            controls_allowed(c.entry_msr, entry_ctl::load_pat);
    // Virtual NMIs: the CPU keeps the guest's NMI blocking (VirtOps::inject_nmi) and offers the
    // NMI window; every CPU with unrestricted guest has them.
    const u32 pin_base = pin::external_interrupt_exiting | pin::nmi_exiting | pin::virtual_nmis;
    const Want wants[] = {
        {"pin-based (with the preemption timer)", pin_base | pin::preemption_timer, pin_msr, &c.pin_with_timer},
        {"pin-based", pin_base, pin_msr, &c.pin_without_timer},
        {"primary processor-based",
         primary::hlt_exiting | primary::mwait_exiting | primary::rdpmc_exiting | primary::use_io_bitmaps |
             primary::use_msr_bitmaps | primary::monitor_exiting | primary::activate_secondary |
             primary::use_tsc_offsetting | primary::use_tpr_shadow,
         primary_msr, &c.primary},
        {"secondary processor-based (EPT, unrestricted guest)", secondary_wanted, secondary_msr, &c.secondary},
        {"VM-exit",
         exit_ctl::host_address_space_size | (c.load_efer ? exit_ctl::load_efer : 0) |
             (c.save_efer ? exit_ctl::save_efer : 0) | (c.pat ? exit_ctl::save_pat | exit_ctl::load_pat : 0),
         exit_msr, &c.exit},
        {"VM-entry", (c.load_efer ? entry_ctl::load_efer : 0) | (c.pat ? entry_ctl::load_pat : 0), c.entry_msr,
         &c.entry},
    };
    for (const Want& want : wants) {
        auto adjusted = adjust_controls(want.bits, want.msr);
        if (!adjusted) {
            log::error("vmx: {} controls {:#x} against MSR {:#x}: {}", want.name, want.bits, want.msr,
                       control_error_name(adjusted.error()));
            return false;
        }
        *want.out = *adjusted;
    }
    if (!(c.ept_vpid & ept_vpid_cap::walk_length_4) || !(c.ept_vpid & ept_vpid_cap::memory_type_wb)) {
        log::error("vmx: EPT lacks 4-level walks or write-back paging structures (cap {:#x})", c.ept_vpid);
        return false;
    }
    c.large_pages = c.ept_vpid & ept_vpid_cap::pages_2m;
    c.cr0 = CrFixed{rdmsr(vmx_msr::vmx_cr0_fixed0), rdmsr(vmx_msr::vmx_cr0_fixed1)};
    c.cr4 = CrFixed{rdmsr(vmx_msr::vmx_cr4_fixed0), rdmsr(vmx_msr::vmx_cr4_fixed1)};
    c.preemption_rate = static_cast<u32>(rdmsr(vmx_msr::vmx_misc) & misc::preemption_timer_rate_mask);
    c.physical_address_bits = host_cpuid(0x80000008, 0).eax & 0xFF;
    caps = c;
    log::debug(
        "vmx: basic {:#x} pin {:#x} primary {:#x} secondary {:#x} exit {:#x} entry {:#x} ept/vpid {:#x} "
        "timer rate {}",
        c.basic, c.pin_with_timer, c.primary, c.secondary, c.exit, c.entry, c.ept_vpid, c.preemption_rate);
    return true;
}

Status<VirtError> vmx_enable() {
    if (!vmx_supported()) return fail(VirtError::unsupported);
    if (vmx_enabled) return {};

    u64 control = rdmsr(vmx_msr::feature_control);
    if (control & feature_control::lock) {
        if (!(control & feature_control::vmx_outside_smx)) {
            log::error("vmx: IA32_FEATURE_CONTROL {:#x} is locked with VMX off", control);
            return fail(VirtError::disabled_by_firmware);
        }
    } else {
        wrmsr(vmx_msr::feature_control, control | feature_control::lock | feature_control::vmx_outside_smx);
    }
    if (!read_capabilities()) return fail(VirtError::unsupported);
    guest_context_enable();

    // CR0.NE and CR4.VMXE (and whatever else FIXED0 demands) before VMXON.
    u64 cr0 = 0, cr4 = 0;
    cr4_before_enable = read_cr4();
    if (!host_control_register(read_cr0(), caps.cr0, cr0) ||
        !host_control_register(cr4_before_enable | kCr4Vmxe, caps.cr4, cr4)) {
        log::error("vmx: the host's CR0 {:#x} / CR4 {:#x} cannot satisfy the VMX fixed bits", read_cr0(),
                   cr4_before_enable);
        return fail(VirtError::unsupported);
    }
    write_cr0(cr0);
    write_cr4(cr4);

    vmxon_region = allocate_frame(0);
    if (!vmxon_region) {
        write_cr4(cr4_before_enable);
        return fail(VirtError::out_of_memory);
    }
    *frame_pointer<u32>(vmxon_region) = caps.revision;
    if (!vmxon(vmxon_region)) {
        log::error("vmx: VMXON failed");
        write_cr4(cr4_before_enable);
        free_frame(vmxon_region);
        vmxon_region = 0;
        return fail(VirtError::unsupported);
    }
    vmx_enabled = true;
    current_vmcs = 0;
    asm volatile("sgdt %0" : "=m"(host_gdtr));
    asm volatile("sidt %0" : "=m"(host_idtr));
    // Forget translations an earlier user of VMX may have left.
    if ((caps.ept_vpid & ept_vpid_cap::invept) && (caps.ept_vpid & ept_vpid_cap::invept_all_context))
        invept(kInveptAllContext, 0);
    if (caps.vpid && (caps.ept_vpid & ept_vpid_cap::invvpid_all_context)) invvpid(kInvvpidAllContext, 0);
    log::debug("vmx: enabled, VMXON region {:#x}, VMCS revision {:#x}", vmxon_region, caps.revision);
    return {};
}

void vmx_disable() {
    if (!vmx_enabled) return;
    vmxoff();
    write_cr4(read_cr4() & ~kCr4Vmxe);
    free_frame(vmxon_region);
    vmxon_region = 0;
    current_vmcs = 0;
    vmx_enabled = false;
}

u16 allocate_vpid() {
    for (u16 vpid = 1; vpid < kMaxVpids; ++vpid) {  // VPID 0 is the host's
        if (!vpid_used[vpid]) {
            vpid_used[vpid] = true;
            return vpid;
        }
    }
    return 0;
}

void free_table(paddr table, void*) { free_frame(table); }

void vmx_destroy_vm(VmHandle handle) {
    VmxVm* vm = vm_of(handle);
    if (!vm) return;
    if (vm->vcpus) log::warn("vmx: destroying a VM with {} vCPUs", vm->vcpus);
    if (vm->ept_root) {
        AllocatorTableMemory memory = ept_memory();
        EptBuilder ept(memory);
        ept.use_root(vm->ept_root);
        if (vmx_enabled) flush_ept(vm->eptp);  // the frames may hold new tables soon
        ept.for_each_table(free_table, nullptr);
    }
    free_frame(vm->io_bitmap_a);
    free_frame(vm->io_bitmap_b);
    free_frame(vm->msr_bitmap);
    if (vm->vpid && vm->vpid < kMaxVpids) vpid_used[vm->vpid] = false;
    if (vm->nested_vcpus) log::warn("vmx: destroying a VM whose nested vCPU lives on");
    paddr self = vm->self;
    vm->~VmxVm();
    free_frame(self);
}

// The MSRs a vCPU owns reach the CPU without an exit: VM entry and exit switch the segment bases,
// the SYSENTER MSRs and PAT (with its controls; without them PAT #GPs as before) with the host's,
// and the guest context KERNEL_GS_BASE, the SYSCALL MSRs and TSC_AUX, which the host never uses,
// when another vCPU is entered: no exit pays for them.
void pass_through_guest_msrs(u8* bitmap) {
    const u32 msrs[] = {kMsrFsBase, kMsrGsBase, kMsrKernelGsBase, kMsrStar,        kMsrLstar,
                        kMsrCstar,  kMsrSfmask, kMsrSysenterCs,   kMsrSysenterEsp, kMsrSysenterEip};
    for (u32 msr : msrs) msr_bitmap::pass_through(bitmap, msr);
    if (caps.pat) msr_bitmap::pass_through(bitmap, kMsrPat);
    if (guest_context_switches_tsc_aux()) msr_bitmap::pass_through(bitmap, kMsrTscAux);
}

Result<VmHandle, VirtError> vmx_create_vm() {
    if (!vmx_enabled) return fail(VirtError::unsupported);
    u16 vpid = 0;
    if (caps.vpid) {
        vpid = allocate_vpid();
        if (!vpid) return fail(VirtError::out_of_asids);
    }
    paddr self = allocate_frame(0);
    if (!self) {
        if (vpid) vpid_used[vpid] = false;
        return fail(VirtError::out_of_memory);
    }
    VmxVm* vm = new (frame_pointer<void>(self)) VmxVm{};
    vm->self = self;
    vm->vpid = vpid;
    // Every port and every MSR exits to the kernel, but the MSRs the vCPU owns.
    vm->io_bitmap_a = allocate_frame(0xFF);
    vm->io_bitmap_b = allocate_frame(0xFF);
    vm->msr_bitmap = allocate_frame(0xFF);
    AllocatorTableMemory memory = ept_memory();
    EptBuilder ept(memory, caps.large_pages);
    if (!vm->io_bitmap_a || !vm->io_bitmap_b || !vm->msr_bitmap || !ept.create_root()) {
        vmx_destroy_vm(handle_of(vm));
        return fail(VirtError::out_of_memory);
    }
    pass_through_guest_msrs(frame_pointer<u8>(vm->msr_bitmap));
    vm->ept_root = ept.root();
    vm->eptp = make_eptp(vm->ept_root);
    log::debug("vmx: VM with VPID {}, EPT root {:#x}", vpid, vm->ept_root);
    return handle_of(vm);
}

Status<VirtError> vmx_map(VmHandle handle, const GuestMapping& mapping) {
    VmxVm* vm = vm_of(handle);
    AllocatorTableMemory memory = ept_memory();
    EptBuilder ept(memory, caps.large_pages);
    ept.use_root(vm->ept_root);
    auto mapped = ept.map(mapping.guest_physical, mapping.host_physical, mapping.size,
                          EptPermissions{.write = mapping.writable, .execute = mapping.executable});
    if (mapped) return {};
    log::debug("vmx: mapping guest-physical {:#x} ({} bytes): {}", mapping.guest_physical, mapping.size,
               ept_error_name(mapped.error()));
    switch (mapped.error()) {
    case EptError::overlapping: return fail(VirtError::overlapping_mapping);
    case EptError::out_of_memory: return fail(VirtError::out_of_memory);
    default: return fail(VirtError::bad_guest);
    }
}

Status<VirtError> vmx_unmap(VmHandle handle, u64 guest_physical, u64 size) {
    VmxVm* vm = vm_of(handle);
    AllocatorTableMemory memory = ept_memory();
    EptBuilder ept(memory, caps.large_pages);
    ept.use_root(vm->ept_root);
    auto unmapped = ept.unmap(guest_physical, size);
    ++vm->mapping_generation;
    for (VmxVcpu* v = vm->nested_vcpus; v; v = v->next_nested) v->nested_hardware.l0_unmapped(ept);
    // One CPU so far: invalidating here covers every vCPU of the VM (INVEPT single-context also
    // drops the VPID-tagged combined translations of this EPTP). Even a refused unmap is flushed.
    if (vmx_enabled) flush_ept(vm->eptp);
    if (unmapped) return {};
    return fail(unmapped.error() == EptError::would_split_large_page ? VirtError::overlapping_mapping
                                                                     : VirtError::bad_guest);
}

// Makes the vCPU's VMCS current and its guest context resident: another vCPU's registers can be in
// the CPU only when another VMCS is current, so an exit back to the same vCPU pays nothing.
bool make_current(VmxVcpu& vcpu) {
    if (current_vmcs == vcpu.vmcs_pa) return true;
    if (!vmptrld(vcpu.vmcs_pa)) return false;
    current_vmcs = vcpu.vmcs_pa;
    guest_context_load(vcpu.context);
    return true;
}

u64 descriptor_base(u64 gdt_base, u16 selector) {
    const u64* entry = reinterpret_cast<const u64*>(gdt_base + (selector & ~7u));
    u64 low = entry[0];
    u64 base = ((low >> 16) & 0xFFFFFF) | (((low >> 56) & 0xFF) << 24);
    if (!(low & (u64{1} << 44))) base |= entry[1] << 32;  // a system descriptor: 16 bytes in long mode
    return base;
}

template <typename Write> void write_host_state(Write& w) {
    u16 cs, ss, ds, es, fs, gs, tr;
    asm volatile("mov %%cs, %0" : "=r"(cs));
    asm volatile("mov %%ss, %0" : "=r"(ss));
    asm volatile("mov %%ds, %0" : "=r"(ds));
    asm volatile("mov %%es, %0" : "=r"(es));
    asm volatile("mov %%fs, %0" : "=r"(fs));
    asm volatile("mov %%gs, %0" : "=r"(gs));
    asm volatile("str %0" : "=r"(tr));
    constexpr u16 kRplTi = 7;  // host selectors must have RPL 0 and TI 0
    w(field::host_cr0, read_cr0());
    w(field::host_cr3, read_cr3());
    w(field::host_cr4, read_cr4());
    w(field::host_cs_selector, cs & ~kRplTi);
    w(field::host_ss_selector, ss & ~kRplTi);
    w(field::host_ds_selector, ds & ~kRplTi);
    w(field::host_es_selector, es & ~kRplTi);
    w(field::host_fs_selector, fs & ~kRplTi);
    w(field::host_gs_selector, gs & ~kRplTi);
    w(field::host_tr_selector, tr & ~kRplTi);
    w(field::host_fs_base, rdmsr(vmx_msr::fs_base));
    w(field::host_gs_base, rdmsr(vmx_msr::gs_base));
    w(field::host_tr_base, descriptor_base(host_gdtr.base, tr));
    w(field::host_gdtr_base, host_gdtr.base);
    w(field::host_idtr_base, host_idtr.base);
    w(field::host_sysenter_cs, rdmsr(vmx_msr::sysenter_cs));
    w(field::host_sysenter_esp, rdmsr(vmx_msr::sysenter_esp));
    w(field::host_sysenter_eip, rdmsr(vmx_msr::sysenter_eip));
    if (caps.load_efer) w(field::host_efer, rdmsr(vmx_msr::efer));
    if (caps.pat) w(field::host_pat, rdmsr(vmx_msr::pat));
    w(field::host_rip, reinterpret_cast<u64>(vmx_exit_entry));
}

template <typename Write> void write_segment(Write& w, u32 selector_field, const SegmentState& s) {
    // The selector, limit, access-rights and base fields of one segment are 2 apart per segment
    // in each group (ES, CS, SS, DS, FS, GS, LDTR, TR), so one index finds all four.
    u32 index = (selector_field - field::guest_es_selector) / 2;
    w(selector_field, s.selector);
    w(field::guest_es_limit + 2 * index, s.limit);
    w(field::guest_es_access_rights + 2 * index, s.access_rights);
    w(field::guest_es_base + 2 * index, s.base);
}

void vmx_destroy_vcpu(VcpuHandle handle) {
    VmxVcpu* vcpu = vcpu_of(handle);
    if (!vcpu) return;
    if (vcpu->nested) vcpu->nested_hardware.release();  // vmcs01 is the vCPU's VMCS again
    if (vcpu->vmcs_pa) {
        if (!vmclear(vcpu->vmcs_pa)) log::warn("vmx: VMCLEAR of {:#x} failed", vcpu->vmcs_pa);
        if (current_vmcs == vcpu->vmcs_pa) current_vmcs = 0;
        free_frame(vcpu->vmcs_pa);
    }
    free_frame(vcpu->virtual_apic_pa);
    guest_context_destroy(vcpu->context);
    if (vcpu->vm) --vcpu->vm->vcpus;
    if (slice_owner == vcpu) slice_owner = nullptr;
    paddr self = vcpu->self;
    vcpu->~VmxVcpu();
    free_frame(self);
}

Result<VcpuHandle, VirtError> vmx_create_vcpu(VmHandle handle, const InitialMode& initial, VcpuState& state) {
    VmxVm* vm = vm_of(handle);
    if (!vmx_enabled || !vm) return fail(VirtError::unsupported);
    InitialGuestState s{};
    if (!initial_guest_state(initial.mode, initial.cr3, s)) return fail(VirtError::bad_guest);
    if (initial.mode == CpuMode::real16)
        s.cs = SegmentState{initial.real_mode_segment, u64{initial.real_mode_segment} << 4, s.cs.limit,
                            s.cs.access_rights};
    if (s.ia32e_mode &&
        (!controls_allowed(caps.entry_msr, entry_ctl::ia32e_mode_guest) || !is_aligned(initial.cr3, kPageSize)))
        return fail(s.ia32e_mode && !is_aligned(initial.cr3, kPageSize) ? VirtError::bad_guest
                                                                        : VirtError::unsupported);
    GuestCr cr0{}, cr4{};
    // Unrestricted guest frees CR0.PE and PG from the fixed bits: real mode and paging off.
    if (!guest_control_register(s.cr0, caps.cr0, kCr0Pe | kCr0Pg, cr0) ||
        !guest_control_register(s.cr4, caps.cr4, 0, cr4))
        return fail(VirtError::bad_guest);

    paddr self = allocate_frame(0);
    if (!self) return fail(VirtError::out_of_memory);
    VmxVcpu* vcpu = new (frame_pointer<void>(self)) VmxVcpu{};
    vcpu->self = self;
    vcpu->vm = vm;
    ++vm->vcpus;
    vcpu->vmcs_pa = allocate_frame(0);
    if (!vcpu->vmcs_pa) {
        vmx_destroy_vcpu(handle_of(vcpu));
        return fail(VirtError::out_of_memory);
    }
    *frame_pointer<u32>(vcpu->vmcs_pa) = caps.revision;
    vcpu->virtual_apic_pa = allocate_frame(0);
    if (!vcpu->virtual_apic_pa) {
        vmx_destroy_vcpu(handle_of(vcpu));
        return fail(VirtError::out_of_memory);
    }
    vcpu->vtpr = frame_pointer<u8>(vcpu->virtual_apic_pa) + kVtprOffset;
    if (!guest_context_create(vcpu->context, true, true)) {
        vmx_destroy_vcpu(handle_of(vcpu));
        return fail(VirtError::out_of_memory);
    }
    if (!vmclear(vcpu->vmcs_pa) || !make_current(*vcpu)) {
        log::error("vmx: VMCLEAR/VMPTRLD of the new VMCS {:#x} failed", vcpu->vmcs_pa);
        vmx_destroy_vcpu(handle_of(vcpu));
        return fail(VirtError::unsupported);
    }
    vcpu->flush_pending = true;
    vcpu->pin_controls = caps.pin_without_timer;
    vcpu->primary_controls = caps.primary;
    vcpu->cr0_mask = cr0.mask;
    vcpu->cr0_shadow = cr0.shadow;
    vcpu->save_efer = caps.save_efer;
    vcpu->ia32e_mode = s.ia32e_mode;
    vcpu->nested = initial.nested;

    VmcsWriter w;
    // Controls.
    w(field::pin_based_controls, vcpu->pin_controls);
    w(field::primary_controls, vcpu->primary_controls);
    w(field::secondary_controls, caps.secondary);
    w(field::exit_controls, caps.exit);
    w(field::entry_controls, caps.entry | (s.ia32e_mode ? entry_ctl::ia32e_mode_guest : 0));
    // The guest handles its own exceptions, but for #DB and #AC, whose delivery a guest can make
    // endless with no interrupt getting through (CVE-2015-8104, CVE-2015-5307): intercepted, each
    // delivery is an exit, and the kernel reflects them. #MC is the host's.
    w(field::exception_bitmap, (1u << kVectorDb) | (1u << kVectorAc) | (1u << kVectorMc));
    w(field::page_fault_error_mask, 0);
    w(field::page_fault_error_match, 0);
    w(field::cr3_target_count, 0);
    w(field::exit_msr_store_count, 0);
    w(field::exit_msr_load_count, 0);
    w(field::entry_msr_load_count, 0);
    w(field::entry_interruption_info, 0);
    w(field::io_bitmap_a, vm->io_bitmap_a);
    w(field::io_bitmap_b, vm->io_bitmap_b);
    w(field::msr_bitmap, vm->msr_bitmap);
    w(field::ept_pointer, vm->eptp);
    if (vm->vpid) w(field::vpid, vm->vpid);
    w(field::tsc_offset, 0);
    w(field::virtual_apic_page_address, vcpu->virtual_apic_pa);
    w(field::tpr_threshold, 0);
    w(field::cr0_guest_host_mask, cr0.mask);
    w(field::cr0_read_shadow, cr0.shadow);
    // Writes of the extended-state bits not offered exit too (write_guest_cr4 refuses them).
    w(field::cr4_guest_host_mask, cr4.mask | cr4_extended_state_not_offered(guest_xsave_offer()));
    w(field::cr4_read_shadow, cr4.shadow);
    w(field::vmcs_link_pointer, kInvalidLinkPointer);
    // Host state.
    write_host_state(w);
    // Guest state.
    write_segment(w, field::guest_es_selector, s.es);
    write_segment(w, field::guest_cs_selector, s.cs);
    write_segment(w, field::guest_ss_selector, s.ss);
    write_segment(w, field::guest_ds_selector, s.ds);
    write_segment(w, field::guest_fs_selector, s.fs);
    write_segment(w, field::guest_gs_selector, s.gs);
    write_segment(w, field::guest_ldtr_selector, s.ldtr);
    write_segment(w, field::guest_tr_selector, s.tr);
    w(field::guest_gdtr_base, s.gdtr_base);
    w(field::guest_gdtr_limit, s.gdtr_limit);
    w(field::guest_idtr_base, s.idtr_base);
    w(field::guest_idtr_limit, s.idtr_limit);
    w(field::guest_cr0, cr0.value);
    w(field::guest_cr3, s.cr3);
    w(field::guest_cr4, cr4.value);
    w(field::guest_dr7, kDr7Reset);
    w(field::guest_debugctl, 0);
    if (caps.load_efer) w(field::guest_efer, s.efer);
    if (caps.pat) w(field::guest_pat, kPatReset);
    w(field::guest_rflags, s.rflags);
    w(field::guest_rsp, 0);
    w(field::guest_rip, 0);
    w(field::guest_sysenter_cs, 0);
    w(field::guest_sysenter_esp, 0);
    w(field::guest_sysenter_eip, 0);
    w(field::guest_interruptibility, 0);
    w(field::guest_activity_state, 0);
    w(field::guest_pending_debug_exceptions, 0);
    w(field::preemption_timer_value, 0);
    if (!w.ok()) {
        log::error("vmx: VMWRITE of field {:#x} failed (VM-instruction error {})", w.failed_field(),
                   vmread(field::instruction_error));
        vmx_destroy_vcpu(handle_of(vcpu));
        return fail(VirtError::unsupported);
    }
    if (initial.nested && initial.nested_hardware) {
        if (!vcpu->nested_hardware.prepare(vcpu)) {
            vmx_destroy_vcpu(handle_of(vcpu));
            return fail(VirtError::out_of_memory);
        }
        *initial.nested_hardware = vcpu->nested_hardware.lent();
    }

    state.cr0 = s.cr0;
    state.efer = s.efer;
    state.rflags = s.rflags;
    state.mode = guest_mode(s.cr0, s.efer, s.rflags, s.cs.access_rights);
    state.cr8 = 0;
    state.cr8_threshold = 0;
    log::debug("vmx: vCPU VMCS {:#x} VPID {} EPT {:#x}, {}", vcpu->vmcs_pa, vm->vpid, vm->ept_root,
               initial.mode == CpuMode::real16   ? "real mode"
               : initial.mode == CpuMode::long64 ? "long mode"
                                                 : "protected mode");
    return handle_of(vcpu);
}

void refresh_state(VmxVcpu& vcpu, VcpuState& state) {
    state.rip = vmread(field::guest_rip);
    state.reg(Gpr::rsp) = vmread(field::guest_rsp);
    state.rflags = vmread(field::guest_rflags);
    state.cr0 = (vmread(field::guest_cr0) & ~vcpu.cr0_mask) | (vcpu.cr0_shadow & vcpu.cr0_mask);
    if (vcpu.save_efer)
        state.efer = vmread(field::guest_efer);
    else
        state.efer = vcpu.ia32e_mode ? kEferLme | kEferLma : 0;
    state.mode =
        guest_mode(state.cr0, state.efer, state.rflags, static_cast<u32>(vmread(field::guest_cs_access_rights)));
}

u64 read_dr6() {
    u64 value;
    asm volatile("mov %%dr6, %0" : "=r"(value));
    return value;
}
void write_dr6(u64 value) { asm volatile("mov %0, %%dr6" ::"r"(value)); }

// The exit came in the middle of an IRET that had unblocked NMIs ("NMI unblocking due to IRET" in
// the exit qualification or interruption information): the guest runs that IRET again, so NMIs
// stay blocked until it completes.
[[gnu::noinline]] void block_nmis_again() {
    vmwrite(field::guest_interruptibility, vmread(field::guest_interruptibility) | interruptibility::nmi);
}

// What the backend does before the kernel sees an intercepted exception (vmx_logic decodes it).
// A machine check is the host's. A #DB leaves DR6 to the VMM (the CPU has not updated the guest's
// DR6, which is the live register while the guest runs): set it as the CPU would have. ICEBP
// (INT1) exits before it completes: step over it, so the reflected #DB is delivered after it. A
// single-step trap pending under STI / MOV SS blocking is not recorded by a #DB exit, and VM entry
// insists on it (SDM 26.3.1.5): record it, as KVM does.
[[gnu::noinline]] void intercepted_exception(VcpuState& state, const RawExit& raw) {
    if (is_machine_check(raw.reason, raw.interruption_info)) {
        log::error("vmx: machine check while a guest ran: the host's handler takes it");
        host_machine_check();
        return;
    }
    u32 info = raw.interruption_info;
    if ((info & intr_info::nmi_unblocking) && (info & intr_info::vector_mask) != kVectorDf) block_nmis_again();
    if ((info & intr_info::vector_mask) != kVectorDb) return;
    write_dr6(dr6_after_debug_exit(read_dr6(), raw.qualification));
    if ((info & intr_info::type_mask) == intr_info::type_privileged_software_exception) {
        state.rip += raw.instruction_length;
        return;
    }
    if ((state.rflags & kRflagsTf) &&
        (vmread(field::guest_interruptibility) & (interruptibility::sti | interruptibility::mov_ss)))
        vmwrite(field::guest_pending_debug_exceptions, vmread(field::guest_pending_debug_exceptions) | debug_qual::bs);
}

// The TSC ticks left of the slice `vcpu` is about to run, 0 if it is over. A slice spans every run
// of this vCPU until it expires, as on SVM: reloading the preemption timer with the whole slice at
// each entry would let a guest that exits often keep the CPU for ever. A slice starts when another
// vCPU ran since this one (slice_owner is set only here, to the vCPU about to run) or when this
// one's last slice ended (preemption clears slice_owner). One RDTSC per entry. A slice is at most
// what the 32-bit timer counts, so the time left always fits it.
[[gnu::always_inline]] inline u64 slice_left(VmxVcpu& vcpu, u64 time_slice) {
    u64 now = rdtsc();
    if (slice_owner != &vcpu) [[unlikely]] {
        u64 longest = u64{0xFFFFFFFF} << caps.preemption_rate;
        u64 slice = time_slice < longest ? time_slice : longest;
        slice_owner = &vcpu;
        if (__builtin_add_overflow(now, slice, &vcpu.slice_end)) vcpu.slice_end = ~u64{0};
        return slice;
    }
    return vcpu.slice_end > now ? vcpu.slice_end - now : 0;
}

// CR8 into VTPR, and the kernel's threshold into the TPR threshold: a MOV to CR8 below it exits
// (after it ran: ExitKind::task_priority). VM entry refuses a threshold above VTPR[7:4]. While L2
// runs, CR8 is still L1's (vmcs01's page); the threshold goes into vmcs02 too unless L2 runs with
// L1's TPR shadow, whose threshold is L1's.
[[gnu::always_inline]] inline void load_task_priority(VmxVcpu& vcpu, const VcpuState& state, VmcsWriter& w) {
    *vcpu.vtpr = static_cast<u8>(state.cr8 << 4);
    u8 threshold = state.cr8_threshold < state.cr8 ? state.cr8_threshold : state.cr8;
    if (threshold == vcpu.tpr_threshold) return;
    vcpu.tpr_threshold = threshold;
    if (vcpu.nested_hardware.running_l2()) vcpu.vmcs01_stale = true;
    if (!vcpu.nested_hardware.l2_tpr_shadow_is_l1s()) w(field::tpr_threshold, threshold);
}

// L0's slice ended while L1's timer for L2 counts: it stops until L2 runs again.
void pause_l2_timer(VmxVcpu& vcpu) {
    L2Timer& t = vcpu.l2_timer;
    if (!t.l1_armed || !t.counting) return;
    u64 now = rdtsc();
    t.left = t.deadline > now ? t.deadline - now : 0;
    t.counting = false;
}

// vmcs02's timer value with L1's timer for L2 armed: the smaller of L1's and, when `sliced`, the
// slice's `slice_timer`.
[[gnu::noinline]] u64 timer_with_l1s(VmxVcpu& vcpu, u64 slice_timer, bool sliced) {
    L2Timer& t = vcpu.l2_timer;
    u64 now = rdtsc();
    if (!t.counting) {
        if (__builtin_add_overflow(now, t.left, &t.deadline)) t.deadline = ~u64{0};
        t.counting = true;
    }
    u64 left = t.deadline > now ? t.deadline - now : 0;
    u64 l1 = left ? ((left - 1) >> caps.preemption_rate) + 1 : 0;
    if (l1 > 0xFFFFFFFF) l1 = 0xFFFFFFFF;  // longer than the timer counts: L0's turn first, then on
    return sliced && slice_timer < l1 ? slice_timer : l1;
}

// vmcs02's timer value: 0 for an immediate exit (NestedHardware::request_immediate_exit; its
// exit is L0's, as a slice's end), else with L1's timer armed.
[[gnu::noinline]] u64 timer_for_l2(VmxVcpu& vcpu, u64 slice_timer, bool sliced) {
    L2Timer& t = vcpu.l2_timer;
    if (!t.immediate_exit) return timer_with_l1s(vcpu, slice_timer, sliced);
    t.immediate_exit = false;
    t.active = t.l1_armed;
    return 0;
}

// Whether a preemption-timer exit of L2 was L1's timer expiring (else L0's slice ended).
[[gnu::noinline]] bool l1_timer_expired(VmxVcpu& vcpu) {
    const L2Timer& t = vcpu.l2_timer;
    return t.l1_armed && t.counting && rdtsc() >= t.deadline;
}

// The slice ran out between two runs (an exit came before the timer): the vCPU does not enter.
[[gnu::noinline]] VmExit slice_over(VmxVcpu& vcpu) {
    slice_owner = nullptr;
    pause_l2_timer(vcpu);
    VmExit exit{};
    exit.kind = ExitKind::preemption;
    exit.vendor_code = exit_reason::preemption_timer;
    return exit;
}

// An event whose delivery the exit interrupted (IDT-vectoring information) is delivered again on
// the next entry.
[[gnu::always_inline]] inline void redeliver_interrupted_event(VmxVcpu& vcpu, const RawExit& raw) {
    u32 vectoring = static_cast<u32>(vmread(field::idt_vectoring_info));
    if (!(vectoring & intr_info::valid)) [[likely]]
        return;
    vcpu.pending_info =
        vectoring & (intr_info::valid | intr_info::error_code_valid | intr_info::type_mask | intr_info::vector_mask);
    vcpu.pending_error_code = static_cast<u32>(vmread(field::idt_vectoring_error_code));
    vcpu.pending_instruction_length = raw.instruction_length;
    vcpu.event_pending = true;
    // An NMI whose delivery the exit interrupted left NMIs blocked, and VM entry refuses to
    // inject one so: its delivery blocks them again (as KVM does).
    if ((vectoring & intr_info::type_mask) == intr_info::type_nmi) [[unlikely]]
        vmwrite(field::guest_interruptibility, vmread(field::guest_interruptibility) & ~interruptibility::nmi);
}

// The exits run_once does not read itself (those decoded_from_state_alone, I/O, EPT violations):
// what they leave in the VMCS, read and acted on - the qualification, an exception's interruption
// information, a physical interrupt to take, the preemption timer, an EPT misconfiguration's
// address, the guest's state, an event whose delivery the exit interrupted, a failed entry's
// report. True if it was L1's preemption timer for L2 that expired.
[[gnu::always_inline]] inline bool read_other_exit(VmxVcpu& vcpu, VcpuState& state, RawExit& raw, bool l2_timer) {
    raw.qualification = vmread(field::exit_qualification);
    u32 basic_reason = raw.reason & exit_reason::basic_mask;
    // Only an exception or NMI exit has interruption information (SDM 28.2.2): for the others it
    // stays 0 here, not valid, as the CPU's field says for them.
    if (basic_reason == exit_reason::exception_or_nmi) {
        raw.interruption_info = static_cast<u32>(vmread(field::exit_interruption_info));
        raw.interruption_error_code = static_cast<u32>(vmread(field::exit_interruption_error_code));
    }
    // A physical interrupt stays pending (not acknowledged on exit): open IF for a moment so the
    // host's handler takes it, or the next entry would exit again at once.
    if (basic_reason == exit_reason::external_interrupt) asm volatile("sti; nop; cli" ::: "memory");
    bool l1s_timer = false;
    if (basic_reason == exit_reason::preemption_timer) {
        l1s_timer = l2_timer && l1_timer_expired(vcpu);
        if (!l1s_timer) {
            slice_owner = nullptr;  // the next run starts a slice
            pause_l2_timer(vcpu);
        }
    }
    if (basic_reason == exit_reason::ept_misconfiguration) raw.guest_physical = vmread(field::guest_physical_address);
    refresh_state(vcpu, state);
    if (basic_reason == exit_reason::exception_or_nmi || basic_reason == exit_reason::machine_check)
        intercepted_exception(state, raw);

    redeliver_interrupted_event(vcpu, raw);

    // vmcs02 failing the CPU's checks is L1's error, which the nested component gives L1 as the
    // VM exit the CPU made: a hostile L1 must not fill the kernel's log with errors.
    if ((raw.reason & exit_reason::entry_failure) && vcpu.nested_hardware.running_l2())
        log::debug("vmx: L2's VM entry failed: exit reason {}, qualification {:#x}", basic_reason, raw.qualification);
    else if (raw.reason & exit_reason::entry_failure)
        log::error("vmx: VM entry failed: exit reason {} ({}), qualification {:#x}", basic_reason,
                   basic_reason == exit_reason::invalid_guest_state ? "invalid guest state"
                   : basic_reason == exit_reason::msr_loading       ? "MSR loading"
                                                                    : "machine check",
                   raw.qualification);
    else if (basic_reason == exit_reason::ept_misconfiguration)
        log::error("vmx: EPT misconfiguration at guest-physical {:#x}", raw.guest_physical);
    return l1s_timer;
}

VmExit run_once(VmxVcpu* vcpu, VcpuState& state, u64 time_slice) {
    u64 timer = 0;
    if (time_slice) {
        u64 left = slice_left(*vcpu, time_slice);
        if (!left) [[unlikely]]
            return slice_over(*vcpu);
        timer = ((left - 1) >> caps.preemption_rate) + 1;  // rounded up: at least 1
    } else {
        slice_owner = nullptr;
    }
    const bool l2_timer = vcpu->l2_timer.active;
    if (l2_timer) [[unlikely]]
        timer = timer_for_l2(*vcpu, timer, time_slice != 0);
    if (!make_current(*vcpu)) {
        log::error("vmx: VMPTRLD of {:#x} failed", vcpu->vmcs_pa);
        return entry_instruction_failure(instruction_error::vmptrld_invalid);
    }
    if (vcpu->flush_pending) {
        // The EPT root and the VPID may have served an earlier VM.
        flush_ept(vcpu->vm->eptp);
        flush_vpid(vcpu->vm->vpid);
        vcpu->flush_pending = false;
    }
    VmcsWriter w;
    w(field::guest_rip, state.rip);
    w(field::guest_rsp, state.reg(Gpr::rsp));
    w(field::guest_rflags, state.rflags | kRflagsFixed1);
    if (caps.load_efer) w(field::guest_efer, state.efer);  // the kernel emulates the guest's WRMSR
    bool timed = time_slice || l2_timer;
    u32 pin = timed ? caps.pin_with_timer : caps.pin_without_timer;
    if (pin != vcpu->pin_controls) {
        w(field::pin_based_controls, pin);
        vcpu->pin_controls = pin;
    }
    if (timed) w(field::preemption_timer_value, timer);
    load_task_priority(*vcpu, state, w);
    if (vcpu->event_pending) {
        w(field::entry_interruption_info, vcpu->pending_info);
        w(field::entry_exception_error_code, vcpu->pending_error_code);
        w(field::entry_instruction_length, vcpu->pending_instruction_length);
        vcpu->event_pending = false;
    }
    if (!w.ok()) {
        log::error("vmx: VMWRITE of field {:#x} failed before entry", w.failed_field());
        return entry_instruction_failure(static_cast<u32>(vmread(field::instruction_error)));
    }

    u64 failure = vmx_world_switch(state.gpr, vcpu->launched);
    // VM exits set the host's GDTR and IDTR limits to 0xFFFF: put the real ones back.
    asm volatile("lgdt %0" ::"m"(host_gdtr));
    asm volatile("lidt %0" ::"m"(host_idtr));
    if (failure) {
        u32 error = failure == 2 ? static_cast<u32>(vmread(field::instruction_error)) : 0;
        log::error("vmx: {} failed: VM-instruction error {} ({})", vcpu->launched ? "VMRESUME" : "VMLAUNCH", error,
                   instruction_error_name(error));
        return entry_instruction_failure(error);
    }

    RawExit raw{};
    raw.reason = static_cast<u32>(vmread(field::exit_reason));
    if (!(raw.reason & exit_reason::entry_failure)) vcpu->launched = true;
    raw.instruction_length = static_cast<u32>(vmread(field::exit_instruction_length));
    bool l1s_timer = false;  // L1's timer for L2 expired: an exit for the nested component
    if (decoded_from_state_alone(raw.reason)) [[likely]] {
        refresh_state(*vcpu, state);
    } else if (raw.reason == exit_reason::io_instruction) {
        raw.qualification = vmread(field::exit_qualification);
        refresh_state(*vcpu, state);
    } else if (raw.reason == exit_reason::ept_violation) {  // MMIO; it may come while an event is delivered
        raw.qualification = vmread(field::exit_qualification);
        raw.guest_physical = vmread(field::guest_physical_address);
        if (raw.qualification & ept_qual::nmi_unblocking) [[unlikely]]
            block_nmis_again();
        refresh_state(*vcpu, state);
        redeliver_interrupted_event(*vcpu, raw);
    } else {
        l1s_timer = read_other_exit(*vcpu, state, raw, l2_timer);
    }
    state.cr8 = static_cast<u8>(*vcpu->vtpr >> 4);
    VmExit exit = decode_exit(raw, state);
    if (l1s_timer) [[unlikely]]
        exit.kind = ExitKind::unknown;  // not a slice's end: NestedHardware::arm_l2_timer
    return exit;
}

// Guest-physical memory through the VM's EPT: only what the VM maps readable.
class EptGuestMemory final : public PagedGuestMemory {
public:
    explicit EptGuestMemory(const VmxVm& vm) : tables_memory_(ept_memory()), ept_(tables_memory_) {
        ept_.use_root(vm.ept_root);
    }
    const u8* page(u64 gpa_page) { return host_page(gpa_page); }

private:
    const u8* host_page(u64 gpa_page) override {
        auto translation = ept_.translate(gpa_page);
        if (!translation || !translation->readable) return nullptr;
        return frame_pointer<u8>(translation->host_physical);
    }
    u8* writable_host_page(u64 gpa_page) override {
        auto translation = ept_.translate(gpa_page);
        if (!translation || !translation->readable || !translation->writable) return nullptr;
        return frame_pointer<u8>(translation->host_physical);
    }

    AllocatorTableMemory tables_memory_;
    EptBuilder ept_;
};

// The guest wrote CR0 or CR4 with a bit the host owns (NE, VMXE: forced by VMX) different from
// its read shadow. The write is the guest's: keep its view in the shadow, the forced bits in the
// real register, and follow paging into and out of long mode as the CPU would.
enum class CrWrite : u8 { done, fault, failed };

// A MOV to CR0 that enters PAE paging, or changes CD or NW in it, loads the PDPTEs from memory
// at CR3 (SDM vol. 3A 4.4.1). The guest's own MOV would have; an emulated one must, since under
// EPT the next VM entry takes them from the VMCS's fields. False: one is not valid (#GP).
[[gnu::cold]] bool load_pae_pdptes(const VmxVcpu& vcpu) {
    u64 pdptes[kPaePdptes] = {};
    EptGuestMemory memory(*vcpu.vm);
    if (!memory.read(pae_pdpt_address(vmread(field::guest_cr3)), pdptes, sizeof(pdptes))) return false;
    for (u64 pdpte : pdptes)
        if (!pae_pdpte_valid(pdpte, caps.physical_address_bits)) return false;
    VmcsWriter w;
    for (usize i = 0; i < kPaePdptes; ++i) w(field::guest_pdpte0 + 2 * static_cast<u32>(i), pdptes[i]);
    return w.ok();
}

CrWrite write_guest_cr0(VmxVcpu& vcpu, VcpuState& state, u64 value) {
    GuestCr cr0{};
    if (~value & vcpu.pinned_cr0) return CrWrite::fault;
    if (!guest_control_register(value, caps.cr0, kCr0Pe | kCr0Pg, cr0)) return CrWrite::fault;
    u64 old = vmread(field::guest_cr0);
    bool pae_paging = (value & kCr0Pg) && (vmread(field::guest_cr4) & kCr4Pae) && !(state.efer & kEferLme);
    if (pae_paging && ((~old & kCr0Pg) || ((old ^ value) & (kCr0Cd | kCr0Nw))) && !load_pae_pdptes(vcpu))
        return CrWrite::fault;
    VmcsWriter w;
    w(field::guest_cr0, cr0.value);
    w(field::cr0_read_shadow, cr0.shadow);
    bool paging_on = (value & kCr0Pg) && !(old & kCr0Pg), paging_off = !(value & kCr0Pg) && (old & kCr0Pg);
    if ((paging_on || paging_off) && (state.efer & kEferLme)) {
        vcpu.ia32e_mode = paging_on;
        state.efer = paging_on ? state.efer | kEferLma : state.efer & ~kEferLma;
        if (caps.load_efer) w(field::guest_efer, state.efer);
        w(field::entry_controls, caps.entry | (paging_on ? entry_ctl::ia32e_mode_guest : 0));
    }
    vcpu.cr0_shadow = cr0.shadow;
    return w.ok() ? CrWrite::done : CrWrite::failed;
}

// CR4.VMXE and SMXE belong to features the guest's CPUID does not offer: #GP, as on a CPU without
// them (a nested-VMX guest will get VMXE from the nested component).
constexpr u64 kCr4NotOffered = kCr4Vmxe | kCr4Smxe;

CrWrite write_guest_cr4(const VmxVcpu& vcpu, u64 value) {
    GuestCr cr4{};
    u64 not_offered = (vcpu.nested ? kCr4NotOffered & ~kCr4Vmxe : kCr4NotOffered) |
                      cr4_extended_state_not_offered(guest_xsave_offer());
    if ((value & not_offered) || (~value & vcpu.pinned_cr4) || !guest_control_register(value, caps.cr4, 0, cr4))
        return CrWrite::fault;
    VmcsWriter w;
    w(field::guest_cr4, cr4.value);
    w(field::cr4_read_shadow, cr4.shadow);
    return w.ok() ? CrWrite::done : CrWrite::failed;
}

void vmx_inject_exception(VcpuHandle handle, u8 vector, bool, u32 error_code);

// MOV to CR0/CR3/CR4 that exited; false (the exit goes to the kernel as unknown) for anything else.
bool emulate_cr_access(VmxVcpu& vcpu, VcpuState& state) {
    u64 q = vmread(field::exit_qualification);
    u32 cr = q & 15, access = (q >> 4) & 3, reg = (q >> 8) & 15;
    if (access != 0) return false;  // MOV from CR, CLTS, LMSW: not intercepted by our masks
    u64 value = state.gpr[reg];
    CrWrite result = cr == 0   ? write_guest_cr0(vcpu, state, value)
                     : cr == 4 ? write_guest_cr4(vcpu, value)
                     : cr == 3 ? (vmwrite(field::guest_cr3, value) ? CrWrite::done : CrWrite::failed)
                               : CrWrite::failed;
    if (result == CrWrite::failed) return false;
    if (result == CrWrite::fault) {  // RIP stays on the MOV, which faults
        vmx_inject_exception(handle_of(&vcpu), 13, true, 0);
        return true;
    }
    state.rip += vmread(field::exit_instruction_length);
    refresh_state(vcpu, state);
    return true;
}

// Control-register writes are the backend's business: they never reach the kernel.
VmExit vmx_run(VcpuHandle handle, VcpuState& state, u64 time_slice) {
    VmxVcpu* vcpu = vcpu_of(handle);
    for (;;) {
        VmExit exit = run_once(vcpu, state, time_slice);
        // L2's control-register accesses are the nested component's (L1 may intercept them).
        if (exit.vendor_code != exit_reason::cr_access || vcpu->nested_hardware.running_l2() ||
            !emulate_cr_access(*vcpu, state))
            return exit;
    }
}

void vmx_inject_exception(VcpuHandle handle, u8 vector, bool, u32 error_code) {
    VmxVcpu* vcpu = vcpu_of(handle);
    // Whether an error code goes with it follows the architecture (VM entry insists): only in
    // protected mode, only for the vectors that push one.
    bool protected_mode = make_current(*vcpu) && (vmread(field::guest_cr0) & kCr0Pe);
    vcpu->pending_info = exception_injection(vector, protected_mode);
    vcpu->pending_error_code = error_code;
    vcpu->pending_instruction_length = 0;
    vcpu->event_pending = true;
}

bool vmx_inject_interrupt(VcpuHandle handle, const VcpuState& state, u8 vector) {
    VmxVcpu* vcpu = vcpu_of(handle);
    if (!(state.rflags & kRflagsIf) || vcpu->event_pending || !make_current(*vcpu)) return false;
    u64 blocking = vmread(field::guest_interruptibility);
    if (blocking & (interruptibility::sti | interruptibility::mov_ss)) {
        // The blocking covers the instruction after STI / MOV SS; once the kernel has stepped
        // over it (an emulated HLT after STI), it is over - and VM entry refuses an external
        // interrupt injected with it set.
        if (vmread(field::guest_rip) == state.rip) return false;
        if (!vmwrite(field::guest_interruptibility, blocking & ~(interruptibility::sti | interruptibility::mov_ss)))
            return false;
    }
    vcpu->pending_info = vector | intr_info::type_external | intr_info::valid;
    vcpu->pending_error_code = 0;
    vcpu->pending_instruction_length = 0;
    vcpu->event_pending = true;
    return true;
}

// NMIs are blocked by an NMI's handler (virtual-NMI blocking, until its IRET) and, as KVM judges
// it, by the STI / MOV SS shadow; the shadow is over once the kernel has stepped past its
// instruction, as for inject_interrupt.
bool vmx_inject_nmi(VcpuHandle handle, const VcpuState& state) {
    VmxVcpu* vcpu = vcpu_of(handle);
    if (vcpu->event_pending || !make_current(*vcpu)) return false;
    u64 blocking = vmread(field::guest_interruptibility);
    if (blocking & interruptibility::nmi) return false;
    if (blocking & (interruptibility::sti | interruptibility::mov_ss)) {
        if (vmread(field::guest_rip) == state.rip) return false;
        if (!vmwrite(field::guest_interruptibility, blocking & ~(interruptibility::sti | interruptibility::mov_ss)))
            return false;
    }
    vcpu->pending_info = kVectorNmi | intr_info::type_nmi | intr_info::valid;
    vcpu->pending_error_code = 0;
    vcpu->pending_instruction_length = 0;
    vcpu->event_pending = true;
    return true;
}

// The windows are VM-execution controls: interrupt-window and NMI-window exiting, in vmcs01
// (VmxVcpu::windows). A window kept open in vmcs01 that the kernel no longer asks for would make
// L1 exit before each of its instructions with interrupts on, and not one of them would run.
constexpr u32 kWindowControls = primary::interrupt_window_exiting | primary::nmi_window_exiting;

void apply_windows(VmxVcpu& vcpu) {
    u32 primary = (vcpu.primary_controls & ~kWindowControls) | vcpu.windows;
    if (primary == vcpu.primary_controls || !make_current(vcpu)) return;
    if (vmwrite(field::primary_controls, primary)) vcpu.primary_controls = primary;
}

// What the kernel set while L2 ran, into vmcs01 as L1 runs again (VmxVcpu::vmcs01_stale).
[[gnu::noinline]] void bring_vmcs01_up_to_date(VmxVcpu& vcpu) {
    apply_windows(vcpu);
    if (!make_current(vcpu)) return;
    VmcsWriter w;
    w(field::tsc_offset, vcpu.tsc_offset);
    w(field::tpr_threshold, vcpu.tpr_threshold);
    vcpu.vmcs01_stale = !w.ok();
}

void request_window(VmxVcpu& vcpu, u32 control, bool on) {
    vcpu.windows = on ? vcpu.windows | control : vcpu.windows & ~control;
    if (!vcpu.nested_hardware.running_l2()) {
        apply_windows(vcpu);
        return;
    }
    vcpu.vmcs01_stale = true;
    vcpu.nested_hardware.apply_kernel_windows();
}

void vmx_request_interrupt_window(VcpuHandle handle, bool on) {
    request_window(*vcpu_of(handle), primary::interrupt_window_exiting, on);
}

void vmx_request_nmi_window(VcpuHandle handle, bool on) {
    request_window(*vcpu_of(handle), primary::nmi_window_exiting, on);
}

void vmx_new_slice(VcpuHandle handle) {
    if (slice_owner == vcpu_of(handle)) slice_owner = nullptr;
}

// vmcs02 runs an L2 with L0's offset plus its L1's (the nested component): it moves with L0's,
// and vmcs01 gets L0's when L1 runs again (VmxNestedHardware::reset_to_l1).
void vmx_set_tsc_offset(VcpuHandle handle, u64 offset) {
    VmxVcpu* vcpu = vcpu_of(handle);
    u64 change = offset - vcpu->tsc_offset;
    vcpu->tsc_offset = offset;
    if (!make_current(*vcpu)) return;
    if (!vcpu->nested_hardware.running_l2()) {
        vmwrite(field::tsc_offset, offset);
        return;
    }
    vmwrite(field::tsc_offset, vmread(field::tsc_offset) + change);
    vcpu->vmcs01_stale = true;
}

// CR4 as the guest sees it: the read shadow for the bits the host owns.
GuestXsaveControls vmx_xsave_controls(VcpuHandle handle) {
    VmxVcpu* vcpu = vcpu_of(handle);
    u64 cr4 = 0;
    if (make_current(*vcpu)) {
        u64 mask = vmread(field::cr4_guest_host_mask);
        cr4 = (vmread(field::guest_cr4) & ~mask) | (vmread(field::cr4_read_shadow) & mask);
    }
    return {cr4, guest_context_xcr0(vcpu->context)};
}

void vmx_set_xcr0(VcpuHandle handle, u64 xcr0) { guest_context_set_xcr0(vcpu_of(handle)->context, xcr0); }

// The host bytes of the guest code page at `linear_page`, remembered per vCPU: an MMIO access's
// instruction is decoded at every such exit, and the guest's page walk with an EPT walk at each
// of its steps would be most of the exit's cost. A guest that rewrites its own page tables under
// the same CR3 may have one access decoded from its old code page; that only concerns the guest.
const u8* code_page(VmxVcpu& vcpu, const GuestPaging& paging, u64 linear_page) {
    CodePageCache& c = vcpu.code;
    const u64 generation = vcpu.vm->mapping_generation;
    if (c.host && c.linear_page == linear_page && c.vmcs_pa == vcpu.vmcs_pa && c.cr0 == paging.cr0 &&
        c.cr3 == paging.cr3 && c.cr4 == paging.cr4 && c.mapping_generation == generation)
        return c.host;
    EptGuestMemory memory(*vcpu.vm);
    u64 gpa = 0;
    const u8* page = guest_translate(paging, linear_page, memory, gpa) ? memory.page(gpa) : nullptr;
    if (page == nullptr) {
        c.host = nullptr;
        return nullptr;
    }
    c = CodePageCache{linear_page, vcpu.vmcs_pa, paging.cr0, paging.cr3, paging.cr4, generation, page};
    return page;
}

// The walk uses the CR0 and CR4 the CPU translates with (the VMCS's guest fields), not the
// guest's read shadows. In place from the cached code page when the bytes lie in it, else
// through both walks.
GuestCode vmx_guest_code(VcpuHandle handle, const VcpuState& state, u8* scratch, usize size) {
    VmxVcpu* vcpu = vcpu_of(handle);
    if (!make_current(*vcpu)) return {scratch, 0};
    GuestPaging paging{vmread(field::guest_cr0), vmread(field::guest_cr3), vmread(field::guest_cr4), state.efer};
    u64 linear = code_linear_address(vmread(field::guest_cs_base), state.rip, state.mode == CpuMode::long64);
    u64 offset = linear & (kPageSize - 1);
    if (offset + size <= kPageSize)
        if (const u8* page = code_page(*vcpu, paging, linear - offset)) return {page + offset, size};
    EptGuestMemory memory(*vcpu->vm);
    return {scratch, read_guest_linear(paging, linear, memory, scratch, size)};
}

}  // namespace

// The nested component asks while it handles an exit of this vCPU, whose VMCS is current then.
x86::vmx::InstructionExit VmxNestedHardware::instruction_exit() {
    if (!make_current(*vcpu_)) return {};
    return {vmread(field::exit_qualification), static_cast<u32>(vmread(field::exit_instruction_info))};
}

x86::vmx::GuestSegment VmxNestedHardware::segment(u32 index) {
    if (index > 5 || !make_current(*vcpu_)) return {0, 0, access_rights::unusable};
    return {vmread(field::guest_es_base + 2 * index), static_cast<u32>(vmread(field::guest_es_limit + 2 * index)),
            static_cast<u32>(vmread(field::guest_es_access_rights + 2 * index))};
}

u64 VmxNestedHardware::cr4() { return vmx_xsave_controls(handle_of(vcpu_)).cr4; }

u64 VmxNestedHardware::interruptibility() { return make_current(*vcpu_) ? vmread(field::guest_interruptibility) : 0; }

LinearTranslation VmxNestedHardware::translate(u64 linear, u64 efer, bool write) {
    if (!make_current(*vcpu_)) return {LinearFault::not_memory, 0, 0};
    GuestPaging paging{vmread(field::guest_cr0), vmread(field::guest_cr3), vmread(field::guest_cr4), efer};
    DataAccess access{write, (vmread(field::guest_rflags) & kRflagsAc) != 0, physical_address_bits()};
    EptGuestMemory memory(*vcpu_->vm);
    return guest_translate_data(paging, linear, access, memory);
}

void VmxNestedHardware::inject_exception(u8 vector, u32 error_code) {
    vmx_inject_exception(handle_of(vcpu_), vector, true, error_code);
}

void VmxNestedHardware::inject_page_fault(u64 linear, u32 error_code) {
    guest_context_set_cr2(vcpu_->context, linear);
    vmx_inject_exception(handle_of(vcpu_), kVectorPf, true, error_code);
}

u32 VmxNestedHardware::physical_address_bits() { return caps.physical_address_bits; }

// The pinned CR0 bits join vmcs01's CR0 guest/host mask (under unrestricted guest CR0.PE and PG
// are the guest's own), so that a MOV clearing one exits for write_guest_cr0 to refuse; the read
// shadow takes their current values. CR4.VMXE is in the CR4 mask always. Only L1 runs VMXON and
// VMXOFF, and the vCPU's end abandons L2 first: vmcs01 is the running VMCS here.
void VmxNestedHardware::pin_control_bits(u64 cr0, u64 cr4) {
    VmxVcpu& v = *vcpu_;
    if (running_l2_ || !make_current(v)) {
        writes_ok_ = false;
        return;
    }
    const u64 mask = v.cr0_mask & ~v.pinned_cr0_mask, added = cr0 & ~mask;
    const u64 shadow = (v.cr0_shadow & ~added) | (vmread(field::guest_cr0) & added);
    VmcsWriter w;
    w(field::cr0_guest_host_mask, mask | added);
    w(field::cr0_read_shadow, shadow);
    if (!w.ok()) {
        writes_ok_ = false;
        return;
    }
    v.cr0_mask = mask | added;
    v.cr0_shadow = shadow;
    v.pinned_cr0 = cr0;
    v.pinned_cr0_mask = added;
    v.pinned_cr4 = cr4;
}

// --- running L2 (nested_hardware.hpp) ---------------------------------------------------------

bool VmxNestedHardware::prepare(VmxVcpu* vcpu) {
    vcpu_ = vcpu;
    vmcs01_pa_ = vcpu->vmcs_pa;
    vmcs02_pa_ = allocate_frame(0);
    empty_ept_root_ = allocate_frame(0);
    paddr merged = allocate_frame(0xFF);  // until the component fills it: every MSR exits
    controls_.merged_msr_bitmap_pa = merged;
    if (!vmcs02_pa_ || !empty_ept_root_ || !merged) return false;
    *frame_pointer<u32>(vmcs02_pa_) = caps.revision;
    if (!vmclear(vmcs02_pa_)) return false;
    if (current_vmcs == vmcs02_pa_) current_vmcs = 0;
    vmcs02_host_state_ = false;
    if (caps.vpid) {
        controls_.l2_vpid = allocate_vpid();
        if (!controls_.l2_vpid) return false;
    }
    VmxVm& vm = *vcpu->vm;
    controls_.pin = caps.pin_without_timer;
    controls_.primary = caps.primary;
    controls_.secondary = caps.secondary;
    controls_.exit = caps.exit;
    controls_.entry = caps.entry;
    controls_.exception_bitmap = (1u << kVectorDb) | (1u << kVectorAc) | (1u << kVectorMc);
    controls_.cr0_fixed0 = caps.cr0.fixed0;
    controls_.cr0_fixed1 = caps.cr0.fixed1;
    controls_.cr4_fixed0 = caps.cr4.fixed0;
    controls_.cr4_fixed1 = caps.cr4.fixed1;
    controls_.cr0_mask = caps.cr0.fixed0 & ~(kCr0Pe | kCr0Pg);
    controls_.cr4_mask = caps.cr4.fixed0 | cr4_extended_state_not_offered(guest_xsave_offer());
    controls_.l1_eptp = vm.eptp;
    controls_.empty_eptp = make_eptp(empty_ept_root_);
    controls_.io_bitmap_a = vm.io_bitmap_a;
    controls_.io_bitmap_b = vm.io_bitmap_b;
    controls_.l0_msr_bitmap = frame_pointer<u8>(vm.msr_bitmap);
    controls_.merged_msr_bitmap = frame_pointer<u8>(merged);
    controls_.load_efer = caps.load_efer;
    controls_.save_efer = caps.save_efer;
    other_ = VmcsLevel{vmcs02_pa_, false, 0, 0, 0, 0, false};
    vcpu->next_nested = vm.nested_vcpus;
    vm.nested_vcpus = vcpu;
    return true;
}

void VmxNestedHardware::release() {
    if (!vcpu_) return;
    reset_to_l1();
    if (vmcs02_pa_) {
        if (!vmclear(vmcs02_pa_)) log::warn("vmx: VMCLEAR of vmcs02 {:#x} failed", vmcs02_pa_);
        if (current_vmcs == vmcs02_pa_) current_vmcs = 0;
    }
    free_frame(vmcs02_pa_);
    free_frame(empty_ept_root_);
    free_frame(controls_.merged_msr_bitmap_pa);
    if (controls_.l2_vpid && controls_.l2_vpid < kMaxVpids) vpid_used[controls_.l2_vpid] = false;
    if (vcpu_->vm) {
        VmxVcpu** link = &vcpu_->vm->nested_vcpus;
        while (*link && *link != vcpu_) link = &(*link)->next_nested;
        if (*link) *link = vcpu_->next_nested;
    }
    vcpu_->next_nested = nullptr;
    vmcs02_pa_ = empty_ept_root_ = vmcs02_virtual_apic_ = 0;
    l1_tpr_shadow_ = false;
    controls_ = {};
    vcpu_ = nullptr;
}

bool VmxNestedHardware::use(x86::vmx::Level level) {
    paddr pa = level == x86::vmx::Level::l2 ? vmcs02_pa_ : vmcs01_pa_;
    if (current_vmcs == pa) return true;
    if (!vmptrld(pa)) return false;
    current_vmcs = pa;
    guest_context_load(vcpu_->context);
    return true;
}

u64 VmxNestedHardware::read(x86::vmx::Level level, u32 field) { return use(level) ? vmread(field) : 0; }

void VmxNestedHardware::write_failed(x86::vmx::Level level, u32 field) {
    if (writes_ok_)
        log::error("vmx: VMWRITE of field {:#x} into vmcs0{} failed", field, level == x86::vmx::Level::l2 ? 2 : 1);
    writes_ok_ = false;
}

void VmxNestedHardware::write(x86::vmx::Level level, u32 field, u64 value) {
    if (!use(level) || !vmwrite(field, value)) write_failed(level, field);
}

void VmxNestedHardware::read_fields(x86::vmx::Level level, const u32* fields, u64* values, usize count) {
    bool current = use(level);
    for (usize i = 0; i < count; ++i) values[i] = current ? vmread(fields[i]) : 0;
}

void VmxNestedHardware::write_fields(x86::vmx::Level level, const u32* fields, const u64* values, usize count) {
    if (!use(level)) {
        if (count) write_failed(level, fields[0]);
        return;
    }
    for (usize i = 0; i < count; ++i)
        if (!vmwrite(fields[i], values[i])) write_failed(level, fields[i]);
}

// The vCPU's fields describe the VMCS that runs; `other_` keeps the other's.
void VmxNestedHardware::swap_levels() {
    VmxVcpu& v = *vcpu_;
    VmcsLevel running{v.vmcs_pa,  v.launched,   v.pin_controls, v.primary_controls,
                      v.cr0_mask, v.cr0_shadow, v.ia32e_mode};
    v.vmcs_pa = other_.vmcs_pa;
    v.launched = other_.launched;
    v.pin_controls = other_.pin_controls;
    v.primary_controls = other_.primary_controls;
    v.cr0_mask = other_.cr0_mask;
    v.cr0_shadow = other_.cr0_shadow;
    v.ia32e_mode = other_.ia32e_mode;
    other_ = running;
    v.event_pending = false;  // an event pending for one level is not the other's
}

void VmxNestedHardware::enter_l2(VcpuState& state, bool flush, const x86::vmx::L2TprShadow* tpr_shadow) {
    if (use(x86::vmx::Level::l2)) {
        VmcsWriter w;
        if (!vmcs02_host_state_) {
            write_host_state(w);
            w(field::vmcs_link_pointer, kInvalidLinkPointer);
        }
        const paddr page = tpr_shadow ? tpr_shadow->frame : vcpu_->virtual_apic_pa;
        if (page != vmcs02_virtual_apic_) {
            w(field::virtual_apic_page_address, page);
            vmcs02_virtual_apic_ = page;
        }
        w(field::tpr_threshold, tpr_shadow ? tpr_shadow->threshold : vcpu_->tpr_threshold);
        l1_tpr_shadow_ = tpr_shadow != nullptr;
        if (tpr_shadow) l1_tpr_page_ = tpr_shadow->page;
        if (!w.ok()) writes_ok_ = false;
        vmcs02_host_state_ = w.ok();
    }
    if (!running_l2_) swap_levels();
    running_l2_ = true;
    shadow_stale_ = false;
    VmxVcpu& v = *vcpu_;
    v.pin_controls = static_cast<u32>(vmread(field::pin_based_controls));
    v.primary_controls = static_cast<u32>(vmread(field::primary_controls));
    v.cr0_mask = vmread(field::cr0_guest_host_mask);
    v.cr0_shadow = vmread(field::cr0_read_shadow);
    v.ia32e_mode = vmread(field::entry_controls) & entry_ctl::ia32e_mode_guest;
    l1_windows_ = v.primary_controls & kWindowControls;
    if (v.windows) [[unlikely]]
        apply_kernel_windows();
    if (flush) {
        flush_ept(vmread(field::ept_pointer));
        flush_vpid(controls_.l2_vpid);
    }
    refresh_state(v, state);
}

void VmxNestedHardware::enter_l1(const x86::vmx::L1ControlState& control, VcpuState& state) {
    reset_to_l1();
    VmxVcpu& v = *vcpu_;
    if (!make_current(v)) return;
    GuestCr cr0{}, cr4{};
    // The VM-entry checks held vmcs12's host CR0 / CR4 to L1's fixed bits; the CPU's are forced.
    if (!guest_control_register(control.cr0, caps.cr0, kCr0Pe | kCr0Pg, cr0))
        cr0 = GuestCr{(control.cr0 | caps.cr0.fixed0) & caps.cr0.fixed1, v.cr0_mask, control.cr0};
    if (!guest_control_register(control.cr4, caps.cr4, 0, cr4))
        cr4 = GuestCr{(control.cr4 | caps.cr4.fixed0) & caps.cr4.fixed1, 0, control.cr4};
    VmcsWriter w;
    w(field::guest_cr0, cr0.value);
    w(field::cr0_read_shadow, cr0.shadow);
    w(field::guest_cr3, control.cr3);
    w(field::guest_cr4, cr4.value);
    w(field::cr4_read_shadow, cr4.shadow);
    v.cr0_shadow = cr0.shadow;
    v.ia32e_mode = control.efer & kEferLma;
    if (caps.load_efer) w(field::guest_efer, control.efer);
    w(field::entry_controls, caps.entry | (v.ia32e_mode ? entry_ctl::ia32e_mode_guest : 0));
    if (!w.ok()) writes_ok_ = false;
    refresh_state(v, state);
    if (!caps.save_efer) state.efer = control.efer;
}

void VmxNestedHardware::apply_kernel_windows() {
    VmxVcpu& v = *vcpu_;
    const u32 primary = (v.primary_controls & ~kWindowControls) | l1_windows_ | v.windows;
    if (primary == v.primary_controls || !use(x86::vmx::Level::l2)) return;
    if (vmwrite(field::primary_controls, primary)) v.primary_controls = primary;
}

void VmxNestedHardware::reset_to_l1() {
    if (!running_l2_) return;
    vcpu_->l2_timer = L2Timer{};  // used only while L2 runs
    swap_levels();
    running_l2_ = false;
    shadow_stale_ = false;
    if (vcpu_->vmcs01_stale) [[unlikely]]
        bring_vmcs01_up_to_date(*vcpu_);
}

void VmxNestedHardware::write_state(const VcpuState& state) {
    if (!make_current(*vcpu_)) return;
    VmcsWriter w;
    w(field::guest_rip, state.rip);
    w(field::guest_rsp, state.reg(Gpr::rsp));
    w(field::guest_rflags, state.rflags | kRflagsFixed1);
    if (caps.load_efer) w(field::guest_efer, state.efer);
    if (!w.ok()) writes_ok_ = false;
}

void VmxNestedHardware::use_l2_eptp(u64 eptp) {
    write(x86::vmx::Level::l2, field::ept_pointer, eptp);
    flush_ept(eptp);
    flush_vpid(controls_.l2_vpid);
}

u64 VmxNestedHardware::mapping_generation() { return vcpu_->vm->mapping_generation; }

void VmxNestedHardware::arm_l2_timer(u64 ticks) {
    L2Timer& t = vcpu_->l2_timer;
    t = L2Timer{true, true, t.immediate_exit, false, ticks, 0};
}

void VmxNestedHardware::disarm_l2_timer() {
    L2Timer& t = vcpu_->l2_timer;
    t.l1_armed = false;
    t.active = t.immediate_exit;
}

void VmxNestedHardware::request_immediate_exit() {
    L2Timer& t = vcpu_->l2_timer;
    t.immediate_exit = true;
    t.active = true;
}

u64 VmxNestedHardware::l2_timer_left() {
    const L2Timer& t = vcpu_->l2_timer;
    if (!t.l1_armed) return 0;
    if (!t.counting) return t.left;
    u64 now = rdtsc();
    return t.deadline > now ? t.deadline - now : 0;
}

namespace {

// 4-level paging's width, no wider than any CPU's: a value canonical in it never faults WRMSR.
constexpr u32 kLinearAddressBits = 48;

bool canonical(u64 address) {
    return static_cast<u64>(static_cast<i64>(address << (64 - kLinearAddressBits)) >> (64 - kLinearAddressBits)) ==
           address;
}

// The MSRs the vCPU owns that the lists may name, and what WRMSR refuses of each with #GP.
enum class OwnedMsr : u8 { none, vmcs_field, cpu };

OwnedMsr owned_msr(u32 index, u64 value, bool write, u32& vmcs_field) {
    bool address_ok = !write || canonical(value), high_clear = !write || (value >> 32) == 0;
    switch (index) {
    case kMsrSysenterCs:
        vmcs_field = field::guest_sysenter_cs;
        return high_clear ? OwnedMsr::vmcs_field : OwnedMsr::none;
    case kMsrSysenterEsp:
        vmcs_field = field::guest_sysenter_esp;
        return address_ok ? OwnedMsr::vmcs_field : OwnedMsr::none;
    case kMsrSysenterEip:
        vmcs_field = field::guest_sysenter_eip;
        return address_ok ? OwnedMsr::vmcs_field : OwnedMsr::none;
    case kMsrKernelGsBase:
    case kMsrLstar:
    case kMsrCstar: return address_ok ? OwnedMsr::cpu : OwnedMsr::none;
    case kMsrStar: return OwnedMsr::cpu;
    case kMsrSfmask: return high_clear ? OwnedMsr::cpu : OwnedMsr::none;
    case kMsrTscAux: return guest_context_switches_tsc_aux() && high_clear ? OwnedMsr::cpu : OwnedMsr::none;
    default: return OwnedMsr::none;
    }
}

}  // namespace

// The SYSCALL MSRs, KERNEL_GS_BASE and TSC_AUX are the CPU's while the vCPU's context is
// resident (guest_context.hpp); the SYSENTER MSRs are each VMCS's guest state.
bool VmxNestedHardware::write_msr(x86::vmx::Level level, u32 index, u64 value) {
    u32 vmcs_field = 0;
    switch (owned_msr(index, value, true, vmcs_field)) {
    case OwnedMsr::none: return false;
    case OwnedMsr::vmcs_field: return use(level) && vmwrite(vmcs_field, value);
    case OwnedMsr::cpu:
        guest_context_load(vcpu_->context);
        wrmsr(index, value);
        return true;
    }
    return false;
}

bool VmxNestedHardware::read_msr(x86::vmx::Level level, u32 index, u64& value) {
    u32 vmcs_field = 0;
    switch (owned_msr(index, 0, false, vmcs_field)) {
    case OwnedMsr::none: return false;
    case OwnedMsr::vmcs_field:
        if (!use(level)) return false;
        value = vmread(vmcs_field);
        return true;
    case OwnedMsr::cpu:
        guest_context_load(vcpu_->context);
        value = rdmsr(index);
        return true;
    }
    return false;
}

// With one CPU the unmap happens while the kernel runs: vmcs02 moves to the empty root before L2
// runs again, and the component drops the shadow at L2's next exit (take_stale_shadow).
void VmxNestedHardware::l0_unmapped(const EptBuilder& ept) {
    if (!running_l2_ || !use(x86::vmx::Level::l2)) return;
    if (l1_tpr_shadow_) {
        auto page = ept.translate(l1_tpr_page_);
        if (!page || !page->writable || page->host_physical != vmcs02_virtual_apic_) {
            // No page to give the CPU: an address beyond every CPU's width fails vmcs02's entry.
            log::warn("vmx: the virtual-APIC page {:#x} of L1's L2 was unmapped: L2 cannot run on", l1_tpr_page_);
            vmwrite(field::virtual_apic_page_address, kNoVirtualApicPage);
            vmcs02_virtual_apic_ = kNoVirtualApicPage;
        }
    }
    u64 eptp = vmread(field::ept_pointer);
    if (eptp == controls_.l1_eptp) return;  // L2 runs on L0's EPT of L1, which the unmap changed
    vmwrite(field::ept_pointer, controls_.empty_eptp);
    flush_ept(eptp);
    shadow_stale_ = true;
}

namespace {

constexpr VirtOps kVmxOps = {
    .name = "vmx",
    .vendor = CpuVendor::intel,
    .supported = vmx_supported,
    .enable = vmx_enable,
    .disable = vmx_disable,
    .create_vm = vmx_create_vm,
    .map = vmx_map,
    .unmap = vmx_unmap,
    .destroy_vm = vmx_destroy_vm,
    .create_vcpu = vmx_create_vcpu,
    .run = vmx_run,
    .inject_exception = vmx_inject_exception,
    .inject_interrupt = vmx_inject_interrupt,
    .request_interrupt_window = vmx_request_interrupt_window,
    .inject_nmi = vmx_inject_nmi,
    .request_nmi_window = vmx_request_nmi_window,
    .set_tsc_offset = vmx_set_tsc_offset,
    .new_slice = vmx_new_slice,
    .destroy_vcpu = vmx_destroy_vcpu,
    .host_cpuid = x86::host_cpuid,
    .xsave_controls = vmx_xsave_controls,
    .set_xcr0 = vmx_set_xcr0,
    .guest_code = vmx_guest_code,
};

}  // namespace

const VirtOps* vmx_backend() { return &kVmxOps; }

}  // namespace nestor::virt
