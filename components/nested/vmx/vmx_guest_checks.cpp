#include "vmx_guest_checks.hpp"

#include "nestor/arch/vmx_vmcs.hpp"
#include "vmx_capabilities.hpp"

namespace nestor::nested::vmx {
namespace {

using namespace intel_vmx;
using namespace x86_regs;

constexpr u64 kEferAllowed = kEferSce | kEferLme | kEferLma | kEferNxe;
constexpr u64 kRflagsReserved = ~u64{0x3FFFFF} | (u64{1} << 15) | (u64{1} << 5) | (u64{1} << 3);
constexpr u64 kRflagsFixed = u64{1} << 1;
constexpr u64 kInterruptibilityOffered = interruptibility::sti | interruptibility::mov_ss | interruptibility::nmi;
constexpr u64 kSmiBlocking = u64{1} << 2;
constexpr u64 kLinkPointerNone = ~u64{0};
constexpr u64 kPageMask = 0xFFF;
constexpr u64 kQualificationLinkPointer = 4;

u64 field(const Vmcs12& v, u32 encoding) { return read_field(v, encoding); }

bool unrestricted(const Vmcs12& v) {
    return (field(v, field::primary_controls) & primary::activate_secondary) &&
           (field(v, field::secondary_controls) & secondary::unrestricted_guest);
}

bool ia32e_guest(const Vmcs12& v) { return field(v, field::entry_controls) & entry_ctl::ia32e_mode_guest; }

u32 injected_type(const Vmcs12& v) {
    u32 info = static_cast<u32>(field(v, field::entry_interruption_info));
    return (info & intr_info::valid) ? (info & intr_info::type_mask) : ~u32{0};
}

GuestCheck control_registers(const Vmcs12& v, u64 cr4_not_offered) {
    const Capabilities& caps = capabilities();
    u64 cr0 = field(v, field::guest_cr0), cr4 = field(v, field::guest_cr4);
    u64 fixed0 = caps.cr0_fixed0 & ~(unrestricted(v) ? kCr0Pe | kCr0Pg : 0);
    if (!fixed_bits_hold(cr0, fixed0, caps.cr0_fixed1) || ((cr0 & kCr0Pg) && !(cr0 & kCr0Pe))) return GuestCheck::cr0;
    if (!fixed_bits_hold(cr4, caps.cr4_fixed0, caps.cr4_fixed1 & ~cr4_not_offered)) return GuestCheck::cr4;
    if (ia32e_guest(v) ? !(cr0 & kCr0Pg) || !(cr4 & kCr4Pae) : (cr4 & kCr4Pcide) != 0) return GuestCheck::ia32e_mode;
    if (field(v, field::entry_controls) & entry_ctl::load_efer) {
        u64 efer = field(v, field::guest_efer);
        bool lma = efer & kEferLma;
        if ((efer & ~kEferAllowed) || lma != ia32e_guest(v) || ((cr0 & kCr0Pg) && lma != ((efer & kEferLme) != 0)))
            return GuestCheck::efer;
    }
    if ((field(v, field::entry_controls) & entry_ctl::load_debug_controls) && (field(v, field::guest_dr7) >> 32))
        return GuestCheck::dr7;
    return GuestCheck::ok;
}

GuestCheck flags_and_blocking(const Vmcs12& v) {
    u64 rflags = field(v, field::guest_rflags);
    bool protected_mode = field(v, field::guest_cr0) & kCr0Pe;
    if ((rflags & kRflagsReserved) || !(rflags & kRflagsFixed)) return GuestCheck::rflags;
    if ((rflags & kRflagsVm) && (ia32e_guest(v) || !protected_mode)) return GuestCheck::rflags;
    u32 type = injected_type(v);
    if (type == intr_info::type_external && !(rflags & kRflagsIf)) return GuestCheck::rflags;
    if (field(v, field::guest_activity_state) != 0) return GuestCheck::activity_state;
    u64 blocking = field(v, field::guest_interruptibility);
    bool sti = blocking & interruptibility::sti, mov_ss = blocking & interruptibility::mov_ss;
    if ((blocking & ~(kInterruptibilityOffered | kSmiBlocking)) || (blocking & kSmiBlocking) || (sti && mov_ss))
        return GuestCheck::interruptibility;
    if (sti && !(rflags & kRflagsIf)) return GuestCheck::interruptibility;
    if (type == intr_info::type_external && (sti || mov_ss)) return GuestCheck::interruptibility;
    if (type == intr_info::type_nmi && (mov_ss || (blocking & interruptibility::nmi)))
        return GuestCheck::interruptibility;
    return GuestCheck::ok;
}

// SDM 26.3.1.5: a link pointer other than all ones is page aligned, inside MAXPHYADDR, not the
// current VMCS, and names a region with our revision and the shadow-VMCS indicator (bit 31)
// equal to "VMCS shadowing", which is not offered: clear. Memory that is not L1's RAM reads as
// all ones, as on the CPU, which fails the revision.
bool link_pointer_ok(const Vmcs12& v, const GuestCheckContext& link) {
    u64 pointer = field(v, field::vmcs_link_pointer);
    if (pointer == kLinkPointerNone) return true;
    if ((pointer & kPageMask) || (link.physical_address_bits < 64 && (pointer >> link.physical_address_bits)))
        return false;
    if (pointer == link.current_vmcs) return false;
    u32 revision = ~u32{0};
    if (!link.host.read(pointer, &revision, sizeof(revision))) return false;
    return revision == kVmcs12Revision;
}

}  // namespace

GuestCheck check_guest_state(const Vmcs12& v, const GuestCheckContext& context) {
    GuestCheck registers = control_registers(v, context.cr4_not_offered);
    if (registers != GuestCheck::ok) return registers;
    GuestCheck flags = flags_and_blocking(v);
    if (flags != GuestCheck::ok) return flags;
    return link_pointer_ok(v, context) ? GuestCheck::ok : GuestCheck::link_pointer;
}

// Asked at every entry: for the common L2, in IA-32e mode, one test.
bool loads_pdptes_from_memory(const Vmcs12& v) {
    if (ia32e_guest(v) || !(field(v, field::guest_cr0) & kCr0Pg) || !(field(v, field::guest_cr4) & kCr4Pae))
        return false;
    bool l1_ept = (field(v, field::primary_controls) & primary::activate_secondary) &&
                  (field(v, field::secondary_controls) & secondary::enable_ept);
    return !l1_ept;
}

bool load_pdptes(const Vmcs12& v, u32 physical_address_bits, Host& host, Pdptes& out) {
    if (!host.read(x86::pae_pdpt_address(field(v, field::guest_cr3)), out.entry, sizeof(out.entry))) return false;
    for (u64 entry : out.entry)
        if (!x86::pae_pdpte_valid(entry, physical_address_bits)) return false;
    return true;
}

u64 guest_check_qualification(GuestCheck check) {
    return check == GuestCheck::link_pointer ? kQualificationLinkPointer : 0;
}

}  // namespace nestor::nested::vmx
