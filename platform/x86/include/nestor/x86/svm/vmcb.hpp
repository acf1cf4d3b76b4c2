// The AMD SVM virtual machine control block for the backend and the nested component: the layout
// (nestor/arch/svm_vmcb.hpp in the SDK, shared with guest hypervisors) with every field's offset
// checked against the manual, and the values of its fields (nestor/arch/svm_fields.hpp).
#pragma once

#include "nestor/arch/svm_fields.hpp"
#include "nestor/arch/svm_vmcb.hpp"
#include "nestor/lib/types.hpp"

namespace nestor::x86::svm {

// The layout and the values of its fields (intercepts, exit codes, EVENTINJ ...) as the SDK
// defines them for every user.
using namespace amd_svm;

static_assert(sizeof(VmcbControl) == 0x400);
static_assert(sizeof(Vmcb) == 0x1000);
#define NESTOR_VMCB_AT(field, offset) static_assert(__builtin_offsetof(Vmcb, field) == (offset), #field)
NESTOR_VMCB_AT(control.intercept_cr, 0x000);
NESTOR_VMCB_AT(control.intercept_exceptions, 0x008);
NESTOR_VMCB_AT(control.intercept_misc1, 0x00C);
NESTOR_VMCB_AT(control.intercept_misc2, 0x010);
NESTOR_VMCB_AT(control.pause_filter_threshold, 0x03C);
NESTOR_VMCB_AT(control.iopm_base_pa, 0x040);
NESTOR_VMCB_AT(control.msrpm_base_pa, 0x048);
NESTOR_VMCB_AT(control.tsc_offset, 0x050);
NESTOR_VMCB_AT(control.guest_asid, 0x058);
NESTOR_VMCB_AT(control.tlb_control, 0x05C);
NESTOR_VMCB_AT(control.int_ctl, 0x060);
NESTOR_VMCB_AT(control.interrupt_shadow, 0x068);
NESTOR_VMCB_AT(control.exit_code, 0x070);
NESTOR_VMCB_AT(control.exit_info_1, 0x078);
NESTOR_VMCB_AT(control.exit_info_2, 0x080);
NESTOR_VMCB_AT(control.exit_int_info, 0x088);
NESTOR_VMCB_AT(control.nested_control, 0x090);
NESTOR_VMCB_AT(control.event_inject, 0x0A8);
NESTOR_VMCB_AT(control.nested_cr3, 0x0B0);
NESTOR_VMCB_AT(control.virt_ext, 0x0B8);
NESTOR_VMCB_AT(control.clean_bits, 0x0C0);
NESTOR_VMCB_AT(control.next_rip, 0x0C8);
NESTOR_VMCB_AT(control.bytes_fetched, 0x0D0);
NESTOR_VMCB_AT(control.guest_instruction_bytes, 0x0D1);
NESTOR_VMCB_AT(control.avic_backing_page, 0x0E0);
NESTOR_VMCB_AT(control.avic_logical_table, 0x0F0);
NESTOR_VMCB_AT(control.avic_physical_table, 0x0F8);
NESTOR_VMCB_AT(control.vmsa_pa, 0x108);
NESTOR_VMCB_AT(save.es, 0x400);
NESTOR_VMCB_AT(save.cs, 0x410);
NESTOR_VMCB_AT(save.ss, 0x420);
NESTOR_VMCB_AT(save.ds, 0x430);
NESTOR_VMCB_AT(save.fs, 0x440);
NESTOR_VMCB_AT(save.gs, 0x450);
NESTOR_VMCB_AT(save.gdtr, 0x460);
NESTOR_VMCB_AT(save.ldtr, 0x470);
NESTOR_VMCB_AT(save.idtr, 0x480);
NESTOR_VMCB_AT(save.tr, 0x490);
NESTOR_VMCB_AT(save.cpl, 0x4CB);
NESTOR_VMCB_AT(save.efer, 0x4D0);
NESTOR_VMCB_AT(save.cr4, 0x548);
NESTOR_VMCB_AT(save.cr3, 0x550);
NESTOR_VMCB_AT(save.cr0, 0x558);
NESTOR_VMCB_AT(save.dr7, 0x560);
NESTOR_VMCB_AT(save.dr6, 0x568);
NESTOR_VMCB_AT(save.rflags, 0x570);
NESTOR_VMCB_AT(save.rip, 0x578);
NESTOR_VMCB_AT(save.rsp, 0x5D8);
NESTOR_VMCB_AT(save.rax, 0x5F8);
NESTOR_VMCB_AT(save.star, 0x600);
NESTOR_VMCB_AT(save.kernel_gs_base, 0x620);
NESTOR_VMCB_AT(save.sysenter_eip, 0x638);
NESTOR_VMCB_AT(save.cr2, 0x640);
NESTOR_VMCB_AT(save.g_pat, 0x668);
NESTOR_VMCB_AT(save.dbgctl, 0x670);
NESTOR_VMCB_AT(save.last_excp_to, 0x690);
#undef NESTOR_VMCB_AT

}  // namespace nestor::x86::svm
