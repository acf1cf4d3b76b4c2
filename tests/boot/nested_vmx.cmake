# nestor_vmx_l1_test(NAME GUEST ARGS ...): an L1 of the SDK on Intel VMX under Bochs, the guest
# GUEST alone in tests/nested/appliances/GUEST.manifest beside the healthy domain, on the
# NESTED_VIRT=ON kernel. Both domains must finish, L1 after printing "done", and nothing may
# log an error; ARGS holds the test's own checks.
function(nestor_vmx_l1_test name guest)
  cmake_parse_arguments(ARG "" "" "ARGS" ${ARGN})
  set(manifest ${CMAKE_CURRENT_BINARY_DIR}/${guest}.bin)
  nestor_pack_manifest(OUTPUT ${manifest}
    MANIFEST ${PROJECT_SOURCE_DIR}/tests/nested/appliances/${guest}.manifest NESTED on)
  add_custom_target(pack_${guest} ALL DEPENDS ${manifest})
  set(initrd "${manifest} manifest")
  string(APPEND initrd ",${NESTOR_KERNEL_main_GUESTS}/${guest}.elf ${guest}")
  string(APPEND initrd ",${NESTOR_KERNEL_main_GUESTS}/healthy.elf healthy")
  nestor_boot_test(${name} nested TIMEOUT 300 ARGS --emulator bochs
    --kernel-elf64 ${NESTOR_KERNEL_NESTED_ON_DIR}/nestor.elf --initrd "${initrd}" --expect-status 0
    ${ARG_ARGS}
    --expect "^\\[l1\\] done$"
    --expect "^appliance: domain l1 exited with status 0 \\(exit port\\)"
    --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
    --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
    --reject "^error:"
    --reject "not implemented yet"
    --reject "guest: unexpected")
endfunction()

# Nested VMX under Bochs (an Intel CPU with VMX, EPT and unrestricted guest): an L1 written with
# the SDK runs every VMX instruction, the good cases and the failures, beside a healthy domain
# that must finish too. Each line is what the instruction did on the L1's side.
nestor_vmx_l1_test(nested.vmx_l1_instructions vmx_l1_instructions ARGS
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on vmx$"
  --expect "^\\[l1\\] vmx basic: revision 0x4e560001, region 4096 bytes, true controls 1$"
  --expect "^\\[l1\\] feature control: 0x5$"
  --expect "^\\[l1\\] vmxon without cr4.vmxe: #UD invalid opcode$"
  --expect "^\\[l1\\] vmptrld without cr4.vmxe: #UD invalid opcode$"
  --expect "^\\[l1\\] vmptrst outside vmx operation: #UD invalid opcode$"
  --expect "^\\[l1\\] vmxoff outside vmx operation: #UD invalid opcode$"
  --expect "^\\[l1\\] vmxon with a wrong revision: VMfailInvalid$"
  --expect "^\\[l1\\] vmxon unaligned: VMfailInvalid$"
  --expect "^\\[l1\\] vmxon: VMsucceed$"
  --expect "^\\[l1\\] vmxon twice: VMfailInvalid$"
  --expect "^\\[l1\\] vmptrld of the vmxon region, no current vmcs: VMfailInvalid$"
  --expect "^\\[l1\\] vmclear a: VMsucceed$"
  --expect "^\\[l1\\] vmptrld a: VMsucceed$"
  --expect "^\\[l1\\] vmwrite guest rip: VMsucceed$"
  --expect "^\\[l1\\] vmread guest rip: VMsucceed$"
  --expect "^\\[l1\\] guest rip read back: 0x123456789abc$"
  --expect "^\\[l1\\] vmread guest rip to memory: VMsucceed$"
  --expect "^\\[l1\\] guest rip read back from memory: 0x123456789abc$"
  --expect "^\\[l1\\] vmptrst: VMsucceed$"
  --expect "^\\[l1\\] vmptrst is vmcs a: yes$"
  --expect "^\\[l1\\] vmptrst through fresh tables: accessed 4 of 4, leaf dirty yes, others dirty no, stored yes$"
  --expect "^\\[l1\\] vmptrld through fresh tables: VMsucceed$"
  --expect "^\\[l1\\] its leaf: accessed yes, dirty no$"
  --expect "^\\[l1\\] vmptrld of the vmxon region: VMfailValid\\(10\\)$"
  --expect "^\\[l1\\] vmptrld unaligned: VMfailValid\\(9\\)$"
  --expect "^\\[l1\\] vmptrld with a wrong revision: VMfailValid\\(11\\)$"
  --expect "^\\[l1\\] vmclear of the vmxon region: VMfailValid\\(3\\)$"
  --expect "^\\[l1\\] vmclear unaligned: VMfailValid\\(2\\)$"
  --expect "^\\[l1\\] vmwrite of the exit reason: VMfailValid\\(13\\)$"
  --expect "^\\[l1\\] vmread of an unsupported field: VMfailValid\\(12\\)$"
  --expect "^\\[l1\\] vmxon in vmx operation: VMfailValid\\(15\\)$"
  --expect "^\\[l1\\] vmresume of a clear vmcs: VMfailValid\\(5\\)$"
  --expect "^\\[l1\\] vmlaunch with zero controls: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] invept type 0: VMfailValid\\(28\\)$"
  --expect "^\\[l1\\] invept all contexts: VMsucceed$"
  --expect "^\\[l1\\] invvpid single context: VMsucceed$"
  --expect "^\\[l1\\] invvpid single context vpid 0: VMfailValid\\(28\\)$"
  --expect "^\\[l1\\] vmptrld b: VMsucceed$"
  --expect "^\\[l1\\] vmclear a while b is current: VMsucceed$"
  --expect "^\\[l1\\] vmptrld a again: VMsucceed$"
  --expect "^\\[l1\\] guest rip after the round trip: 0x123456789abc$"
  --expect "^\\[l1\\] vmxoff: VMsucceed$"
  --expect "^\\[l1\\] vmptrst after vmxoff: #UD invalid opcode$")

# An L1 on Intel VMX runs an L2 (tests/nested/guests/vmx_l2_runs.cpp), beside a healthy domain:
# exits reflected with reason, instruction length and qualification; a guest-state check failing
# as a VM exit with reason 0x80000021; L2's memory through L1's EPT (the shadow EPT), an EPT
# violation reflected with its qualification and guest-physical address, and L1's new mapping;
# L1's VMX-preemption timer (reason 52, the saved value) across L0's own slices; the VM-entry and
# VM-exit MSR lists, and an entry MSR-load failure (reason 0x80000022, the entry's number); L2's
# MOV to CR4 / CR0 clearing a bit L0 owns and L1 leaves to L2: #GP(0) to L1 or to L2's IDT; a
# 32-bit PAE L2 without L1's EPT, its PDPTEs loaded from memory.
nestor_vmx_l1_test(nested.vmx_l2_runs vmx_l2_runs ARGS
  --expect "^\\[l1\\] vmlaunch with activity state hlt: exit reason 0x80000021, guest rip unchanged yes$"
  --expect "^\\[l1\\] l2 cpuid: exit reason 10, length 2, qualification 0x0$"
  --expect "^\\[l1\\] l2 out: exit reason 30, length 2, qualification 0x800040$"
  --expect "^\\[l1\\] l2 hlt: exit reason 12, length 1, qualification 0x0$"
  --expect "^\\[l1\\] l2 vmcall: exit reason 18, length 3, qualification 0x0$"
  --expect "^\\[l1\\] l2 wrote: yes$"
  --expect "^\\[l1\\] l2 ud2: exit reason 0, interruption info 0x80000306$"
  --expect "^\\[l1\\] ept l2 vmcall: exit reason 18, length 3, qualification 0x0$"
  --expect "^\\[l1\\] l2 wrote through l1's ept: yes$"
  --expect "^\\[l1\\] ept violation: exit reason 48, qualification read 1, rights 0, guest-physical 0x40001000$"
  --expect "^\\[l1\\] ept l2 vmcall after the remap: exit reason 18, length 3, qualification 0x0$"
  --expect "^\\[l1\\] l2 read through the new mapping: 0x1a7e$"
  --expect "^\\[l1\\] l2 spinning with the preemption timer: exit reason 52, saved value 0, whole timer ran yes$"
  --expect "^\\[l1\\] l2 cpuid with the preemption timer: exit reason 10, saved value counted down yes$"
  --expect "^\\[l1\\] msr lists l2 vmcall: exit reason 18, length 3, qualification 0x0$"
  --expect "^\\[l1\\] l2 read lstar: 0xffff8000000c2000, exit msr-store list: 0xffff8000000c2000$"
  --expect "^\\[l1\\] l1's lstar after the exit: 0xffff800000001000$"
  --expect "^\\[l1\\] l2's efer from the entry list: yes, in the exit msr-store list yes, l1's back after the exit yes$"
  --expect "^\\[l1\\] entry msr-load list with fs base: exit reason 0x80000022, qualification 3$"
  --expect "^\\[l1\\] l2 clearing cr4\\.vmxe: exit reason 0, info 0x80000b0d, error 0, at the mov yes, vmxe set yes$"
  --expect "^\\[l1\\] l2 clearing cr0\\.ne: exit reason 18, l2's #gp error 0, at the mov yes, ne set yes$"
  --expect "^\\[l1\\] pae l2 out: exit reason 30, length 2, qualification 0x800040$"
  --expect "^\\[l1\\] pae l2 vmcall: exit reason 18, length 3, qualification 0x0$")

# Hostile L1s on Intel VMX (tests/nested/guests/vmx_hostile_l1.cpp, one case per domain), beside
# the healthy domain, which must finish: Nestor never panics, takes a CPU exception or hangs, and
# each case ends as the SDM says (the exception, the VM-instruction error, the VM exit with its
# qualification) or, where L1's structures are not its memory, with the domain stopped and the
# component's report. L0 logs no error of its own for what L1 did.
set(vmx_hostile_manifest ${CMAKE_CURRENT_BINARY_DIR}/vmx_hostile_l1.bin)
nestor_pack_manifest(OUTPUT ${vmx_hostile_manifest}
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/nested/appliances/vmx_hostile_l1.manifest NESTED on)
add_custom_target(pack_vmx_hostile_l1 ALL DEPENDS ${vmx_hostile_manifest})
set(vmx_hostile_initrd "${vmx_hostile_manifest} manifest")
string(APPEND vmx_hostile_initrd ",${NESTOR_KERNEL_main_GUESTS}/vmx_hostile_l1.elf vmx_hostile_l1")
string(APPEND vmx_hostile_initrd ",${NESTOR_KERNEL_main_GUESTS}/healthy.elf healthy")

nestor_boot_test(nested.vmx_hostile_l1 nested TIMEOUT 300 ARGS --emulator bochs
  --kernel-elf64 ${NESTOR_KERNEL_NESTED_ON_DIR}/nestor.elf --initrd "${vmx_hostile_initrd}" --expect-status 1
  # VMX instructions outside VMX operation, with CR4.VMXE clear and set: #UD (the ones
  # nested.vmx_l1_instructions checks are left out).
  --expect "^\\[l1\\] cr4\\.vmxe clear: vmclear #UD invalid opcode$"
  --expect "^\\[l1\\] cr4\\.vmxe clear: vmread #UD invalid opcode$"
  --expect "^\\[l1\\] cr4\\.vmxe clear: vmwrite #UD invalid opcode$"
  --expect "^\\[l1\\] cr4\\.vmxe clear: vmlaunch #UD invalid opcode$"
  --expect "^\\[l1\\] cr4\\.vmxe clear: vmresume #UD invalid opcode$"
  --expect "^\\[l1\\] cr4\\.vmxe clear: vmptrst #UD invalid opcode$"
  --expect "^\\[l1\\] cr4\\.vmxe clear: vmxoff #UD invalid opcode$"
  --expect "^\\[l1\\] cr4\\.vmxe clear: invept #UD invalid opcode$"
  --expect "^\\[l1\\] cr4\\.vmxe clear: invvpid #UD invalid opcode$"
  --expect "^\\[l1\\] outside vmx operation: vmclear #UD invalid opcode$"
  --expect "^\\[l1\\] outside vmx operation: vmptrld #UD invalid opcode$"
  --expect "^\\[l1\\] outside vmx operation: vmread #UD invalid opcode$"
  --expect "^\\[l1\\] outside vmx operation: vmwrite #UD invalid opcode$"
  --expect "^\\[l1\\] outside vmx operation: vmlaunch #UD invalid opcode$"
  --expect "^\\[l1\\] outside vmx operation: vmresume #UD invalid opcode$"
  --expect "^\\[l1\\] outside vmx operation: invept #UD invalid opcode$"
  --expect "^\\[l1\\] outside vmx operation: invvpid #UD invalid opcode$"
  # CPL 3: #GP(0) before every other check (no current VMCS, a valid one), but #UD outside VMX
  # operation; nothing changed.
  --expect "^\\[l1\\] cpl 3 vmxon outside vmx operation: #GP\\(0\\)$"
  --expect "^\\[l1\\] cpl 3 vmlaunch outside vmx operation: #UD invalid opcode$"
  --expect "^\\[l1\\] vmxon: VMsucceed$"
  --expect "^\\[l1\\] cpl 3 vmlaunch, no current vmcs: #GP\\(0\\)$"
  --expect "^\\[l1\\] cpl 3 vmlaunch, a valid current vmcs: #GP\\(0\\)$"
  --expect "^\\[l1\\] cpl 3 vmresume: #GP\\(0\\)$"
  --expect "^\\[l1\\] cpl 3 vmwrite guest rip: #GP\\(0\\)$"
  --expect "^\\[l1\\] cpl 3 vmread guest rip: #GP\\(0\\)$"
  --expect "^\\[l1\\] cpl 3 vmptrld: #GP\\(0\\)$"
  --expect "^\\[l1\\] cpl 3 vmclear of the current vmcs: #GP\\(0\\)$"
  --expect "^\\[l1\\] cpl 3 vmxon in vmx operation: #GP\\(0\\)$"
  --expect "^\\[l1\\] cpl 3 invept: #GP\\(0\\)$"
  --expect "^\\[l1\\] cpl 3 vmxoff: #GP\\(0\\)$"
  --expect "^\\[l1\\] after cpl 3: vmcs a current yes, guest rip 0x1234$"
  # CR4.VMXE and CR0.NE are fixed to 1 in VMX operation: clearing one #GPs and changes nothing.
  --expect "^\\[l1\\] in vmx operation, cr4\\.vmxe cleared: #GP\\(0\\), cr4\\.vmxe still set$"
  --expect "^\\[l1\\] in vmx operation, cr0\\.ne cleared: #GP\\(0\\), cr0\\.ne still set$"
  # VMWRITE of read-only fields: 13, the field unchanged.
  --expect "^\\[l1\\] vmwrite of the read-only vm-instruction error \\(0x4400\\): VMfailValid\\(13\\), unchanged$"
  --expect "^\\[l1\\] vmwrite of the read-only exit qualification \\(0x6400\\): VMfailValid\\(13\\), unchanged$"
  --expect "^\\[l1\\] vmwrite of the read-only guest-physical address \\(0x2400\\): VMfailValid\\(13\\), unchanged$"
  --expect "^\\[l1\\] vmwrite of the read-only guest-physical address high \\(0x2401\\): VMfailValid\\(13\\), unchanged$"
  --expect "^\\[l1\\] vmwrite of the read-only guest-linear address \\(0x640a\\): VMfailValid\\(13\\), unchanged$"
  --expect "^\\[l1\\] vmwrite of the read-only idt-vectoring information \\(0x4408\\): VMfailValid\\(13\\), unchanged$"
  --expect "^\\[l1\\] vmwrite of the read-only exit instruction length \\(0x440c\\): VMfailValid\\(13\\), unchanged$"
  # Memory operands L1's paging does not map (at 4 GiB): #PF, CR2 the operand, W for VMPTRST.
  --expect "^\\[l1\\] vmptrld of an operand at 0x100000040: #PF\\(0x0\\) cr2 0x100000040$"
  --expect "^\\[l1\\] vmptrst of an operand at 0x100000040: #PF\\(0x2\\) cr2 0x100000040$"
  --expect "^\\[l1\\] after the page faults: the current vmcs unchanged$"
  # Controls the capability MSRs say must be 0 (or 1), each alone on a valid vmcs12: 7; without
  # them L2 runs to its VMCALL (exit 18).
  --expect "^\\[l1\\] pin process posted interrupts: allowed 0, vmlaunch VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] primary monitor trap flag: allowed 0, vmlaunch VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] primary default1 bit 1 cleared: must be one 1, vmlaunch VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] secondary virtualize apic accesses: allowed 0, vmlaunch VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] secondary enable rdtscp: allowed 0, vmlaunch VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] secondary enable vm functions: allowed 0, vmlaunch VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] secondary vmcs shadowing: allowed 0, vmlaunch VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] exit save pat: allowed 0, vmlaunch VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] exit load pat: allowed 0, vmlaunch VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] entry to smm: allowed 0, vmlaunch VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] entry load pat: allowed 0, vmlaunch VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] none of them: exit reason 0x12, qualification 0$"
  # MSR lists and EPT pointers the VM-entry checks refuse: 7; an entry MSR-load list that is not
  # L1's RAM (past its memory, the local APIC): entry failure 0x80000022, qualification 1.
  --expect "^\\[l1\\] entry msr-load list unaligned: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] entry msr-load list beyond maxphyaddr: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] entry msr-load list running past maxphyaddr: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] exit msr-store list unaligned: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] exit msr-store list beyond maxphyaddr: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] exit msr-store list running past maxphyaddr: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] exit msr-load list unaligned: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] exit msr-load list beyond maxphyaddr: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] exit msr-load list running past maxphyaddr: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] entry msr-load list at 0x1000000: exit reason 0x80000022, qualification 1, guest rip unchanged yes$"
  --expect "^\\[l1\\] entry msr-load list at 0xfee00000: exit reason 0x80000022, qualification 1, guest rip unchanged yes$"
  --expect "^\\[l1\\] ept pointer memory type uc: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] ept pointer 5-level walk: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] ept pointer accessed and dirty flags: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] ept pointer reserved bit 7: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] ept pointer beyond maxphyaddr: VMfailValid\\(7\\)$"
  # The VMCS link pointer: entry failure 0x80000021 with qualification 4 (L1 back at its host RIP,
  # L2's RIP unchanged) unless it names a region with our revision, which is not the current VMCS.
  --expect "^\\[l1\\] link pointer a region with a wrong revision: exit reason 0x80000021, qualification 4, guest rip unchanged yes$"
  --expect "^\\[l1\\] link pointer unaligned: exit reason 0x80000021, qualification 4, guest rip unchanged yes$"
  --expect "^\\[l1\\] link pointer beyond maxphyaddr: exit reason 0x80000021, qualification 4, guest rip unchanged yes$"
  --expect "^\\[l1\\] link pointer past l1's memory: exit reason 0x80000021, qualification 4, guest rip unchanged yes$"
  --expect "^\\[l1\\] link pointer the local apic: exit reason 0x80000021, qualification 4, guest rip unchanged yes$"
  --expect "^\\[l1\\] link pointer the current vmcs: exit reason 0x80000021, qualification 4, guest rip unchanged yes$"
  --expect "^\\[l1\\] link pointer to a shadow vmcs: exit reason 0x80000021, qualification 4$"
  --expect "^\\[l1\\] link pointer to a region with our revision: exit reason 0x12, qualification 0$"
  # Corrupted VMCS regions: random bytes (a wrong revision, the shadow-VMCS indicator: 11; our
  # revision: launch state and controls random: 4, 5, 7), and a current region L1 rewrites in
  # memory: VMREAD and VMLAUNCH use Nestor's cached copy, VMCLEAR writes it back.
  --expect "^\\[l1\\] random region, revision 0x22789f36: vmptrld VMfailValid\\(11\\)$"
  --expect "^\\[l1\\] random region with the shadow-vmcs indicator: vmptrld: VMfailValid\\(11\\)$"
  --expect "^\\[l1\\] random region with our revision: vmptrld: VMsucceed$"
  --expect "^\\[l1\\] random region: vmlaunch: VMfailValid\\(4\\)$"
  --expect "^\\[l1\\] random region: vmresume: VMfailValid\\(5\\)$"
  --expect "^\\[l1\\] random region after vmclear: vmclear: VMsucceed$"
  --expect "^\\[l1\\] random region after vmclear: vmptrld: VMsucceed$"
  --expect "^\\[l1\\] random region after vmclear: vmlaunch: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] current region overwritten: guest rip as written, revision in memory not ours$"
  --expect "^\\[l1\\] current region overwritten: vmlaunch: exit reason 0x12, qualification 0$"
  --expect "^\\[l1\\] current region overwritten: vmclear: VMsucceed$"
  --expect "^\\[l1\\] after vmclear: revision in memory ours$"
  --expect "^\\[l1\\] vmptrld again: VMsucceed$"
  --expect "^\\[l1\\] guest rip after the round trip as written$"
  # 64 random vmcs12s: VMfailValid, an entry failure or an exit L1 asked for, never anything else;
  # then a valid L2 still runs.
  --expect "^\\[l1\\] random vmcs12s, every field random: 16 of 16 VMfailValid$"
  --expect "^\\[l1\\] random vmcs12s, a valid l2 with random guest-state fields: [0-9]+ entry failures \\(0x80000021\\), [0-9]+ exits l1 asked for, of 48$"
  --expect "^\\[l1\\] random vmcs12s: 0 unexpected$"
  --expect "^\\[l1\\] a valid l2 at the end: exit reason 0x12, qualification 0$"
  --expect "^\\[l1\\] vmx_hostile_l1 checks: L1 lives on$"
  # An EPT pointer past L1's memory or at the local APIC's address: L2's first access stops the
  # domain (its EPT is not L1's memory); a VM-exit MSR-store list past L1's memory and a VM-exit
  # MSR-load list at the local APIC: L2's first exit is a VMX abort (SDM 27.7), which stops it.
  --expect "^\\[eptout\\] l1's ept pointer at l1-physical 0x1000000, l2 starts$"
  --expect "^error: appliance: domain eptout stopped: unsupported operation after [0-9]+ exits \\(last exit nested_page_fault code 0x30 at rip 0x[0-9a-f]+\\)$"
  --expect "^error: appliance: domain eptout: nested VMX: L1's EPT is not in L1's memory$"
  --expect "^error: appliance: domain eptout: read of guest-physical 0x[0-9a-f]+, outside its memory$"
  --expect "^\\[eptmmio\\] l1's ept pointer at the local apic's address 0xfee00000, l2 starts$"
  --expect "^error: appliance: domain eptmmio stopped: unsupported operation after [0-9]+ exits \\(last exit nested_page_fault code 0x30 at rip 0x[0-9a-f]+\\)$"
  --expect "^error: appliance: domain eptmmio: nested VMX: L1's EPT is not in L1's memory$"
  --expect "^error: appliance: domain eptmmio: read of guest-physical 0x[0-9a-f]+, outside its memory$"
  --expect "^\\[tprmmio\\] virtual-apic page at 0xfee00000, l2 starts$"
  --expect "^error: appliance: domain tprmmio: nested VMX: L1's virtual-APIC page is not in L1's memory$"
  --expect "^\\[exitstore\\] vm-exit msr-store list at 0x1000000, l2 starts$"
  --expect "^error: appliance: domain exitstore stopped: unsupported operation after [0-9]+ exits \\(last exit hypercall code 0x12 at rip 0x[0-9a-f]+\\)$"
  --expect "^error: appliance: domain exitstore: nested VMX: VMX abort: L1's VM-exit MSR-store list could not be stored$"
  --expect "^\\[exitload\\] vm-exit msr-load list at 0xfee00000, l2 starts$"
  --expect "^error: appliance: domain exitload stopped: unsupported operation after [0-9]+ exits \\(last exit hypercall code 0x12 at rip 0x[0-9a-f]+\\)$"
  --expect "^error: appliance: domain exitload: nested VMX: VMX abort: L1's VM-exit MSR-load list could not be loaded$"
  --expect "^appliance: domain l1 exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --expect "^\\[healthy\\] healthy: yielded 5 times, 0 refused$"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --expect "^appliance: 7 of 7 domains built, 5 failed or refused$"
  --reject "PANIC" --reject "[Pp]anic" --reject "CPU exception" --reject "^error: vmx"
  --reject "WRONG" --reject "CHANGED" --reject "^\\[[a-z]+\\] (unexpected|vmx_hostile_l1: )"
  --reject "^error: appliance: domain (l1|healthy)" --reject "not implemented yet")

# An L1 on Intel VMX in a PC domain (tests/nested/guests/vmx_l1_nmi.cpp): its L2's NMI (a self-NMI
# through the x2APIC) is L1's VM exit when L1 exits on NMIs, reason 0 with the NMI in the
# interruption information, and taken by it: L1 sees no NMI of its own after it.
nestor_vmx_l1_test(nested.vmx_l1_nmi vmx_l1_nmi ARGS
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on vmx$"
  --expect "^\\[l1\\] L2's self-NMI: exit reason 0, interruption info 0x80000202, in L1 after it: nothing$")

# An L1 on Intel VMX in a PC domain (tests/nested/guests/vmx_l1_interrupt_window.cpp): its
# self-IPI waits, interrupts off, for L1's interrupt window; L1 enters L2 injecting an event, which
# goes first, and right after its delivery (before L2 runs an instruction of its handler) the
# interrupt is L1's VM exit, acknowledged. The window was L1's alone:
# L1 then runs with interrupts on, not exiting before each instruction for it.
nestor_vmx_l1_test(nested.vmx_l1_interrupt_window vmx_l1_interrupt_window ARGS
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on vmx$"
  --expect "^\\[l1\\] L1's interrupt during L2: exit reason 1, interruption info 0x80000040, at L2's handler: yes, its steps 0$"
  --expect "^\\[l1\\] L1 with interrupts on: 1000 steps$")

# An L1 on Intel VMX in a PC domain (tests/nested/guests/vmx_l2_tsc_write.cpp) that offsets its
# L2's TSC and lets L2's WRMSR through: L2's write to IA32_TSC sets the domain's TSC, which L2 reads
# plus L1's offset and L1 reads as written.
nestor_vmx_l1_test(nested.vmx_l2_tsc_write vmx_l2_tsc_write ARGS
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on vmx$"
  --expect "^\\[l1\\] L2's exit reason 18$"
  --expect "^\\[l1\\] L2's TSC after its write: the value written plus L1's offset: yes$"
  --expect "^\\[l1\\] L1's TSC then: the value L2 wrote: yes$")

# An L1 on Intel VMX in a PC domain (tests/nested/guests/vmx_msr_lists_devices.cpp) whose MSR
# lists name IA32_MTRR_DEF_TYPE, which the PC's MSR file serves: loaded for L2, stored from L2,
# loaded back for L1; a value the device refuses and an MSR nothing serves fail the entry at their
# entry (exit reason 0x80000022).
nestor_vmx_l1_test(nested.vmx_msr_lists_devices vmx_msr_lists_devices ARGS
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on vmx$"
  --expect "^\\[l1\\] L2's exit reason 18$"
  --expect "^\\[l1\\] L2 read the entry list's value: yes$"
  --expect "^\\[l1\\] the exit MSR-store list holds L2's write: yes$"
  --expect "^\\[l1\\] L1's own back from the exit MSR-load list: yes$"
  --expect "^\\[l1\\] a reserved bit in the second entry: exit reason 0x80000022, qualification 2, l1's value kept: yes$"
  --expect "^\\[l1\\] an MSR nothing serves in the first entry: exit reason 0x80000022, qualification 1, l1's value kept: yes$")

# An L1 on Intel VMX in a PC domain (tests/nested/guests/vmx_l2_takes_l1_interrupt.cpp) without
# external-interrupt exiting: its interrupt, pending while its L2 runs with interrupts off,
# reaches L2's handler as soon as L2 sets IF (L0 waits for L2's interrupt window), before L2's
# VMCALL two instructions later.
nestor_vmx_l1_test(nested.vmx_l2_takes_l1_interrupt vmx_l2_takes_l1_interrupt ARGS
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on vmx$"
  --expect "^\\[l1\\] L2's exit reason 18, L1's interrupt taken by L2 before its VMCALL: yes, in all: 1$")

# An L1 on Intel VMX in a PC domain (tests/nested/guests/vmx_l2_takes_l1_nmi.cpp) without NMI
# exiting: the second of two self-NMIs of its L2, sent while the first blocks NMIs, reaches L2's
# handler as soon as its IRET ends the blocking (L0 waits for L2's NMI window), before L2's VMCALL.
nestor_vmx_l1_test(nested.vmx_l2_takes_l1_nmi vmx_l2_takes_l1_nmi ARGS
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on vmx$"
  --expect "^\\[l1\\] L2's exit reason 18, both NMIs taken by L2 before its VMCALL: yes, in all: 2$")

# An L1 on Intel VMX in a PC domain with two vCPUs (tests/nested/guests/vmx_l1_init_signal.cpp):
# the BSP's INIT to the application processor while its L2 runs is L1's VM exit with reason 3,
# which takes it; the next, in VMX root operation, waits (the AP runs on) until its VMXOFF, after
# which the AP waits for the startup IPI that starts it again.
nestor_vmx_l1_test(nested.vmx_l1_init_signal vmx_l1_init_signal ARGS
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on vmx$"
  --expect "^\\[l1\\] the AP's L2 took an INIT as VM exit reason 3$"
  --expect "^\\[l1\\] its VM-exit MSR-store list holds the AP's IA32_MTRR_DEF_TYPE: yes$"
  --expect "^\\[l1\\] an INIT in VMX root operation waited: the AP ran on: yes$"
  --expect "^appliance: domain l1: vCPU 1 waits for a startup IPI again \\(INIT\\)$"
  --expect "^\\[l1\\] VMXOFF let the INIT in: the instruction after it did not run: yes$"
  --expect "^\\[l1\\] the startup IPI sent while the INIT waited was ignored: yes$"
  --expect "^\\[l1\\] the startup IPI started the AP again: yes$")

# An L1 on Intel VMX in a PC domain that gives its L2 a TPR shadow (tests/nested/guests/
# vmx_l1_tpr_shadow.cpp): the entry checks of its page and threshold, L2's CR8 in L1's page, a MOV
# below L1's threshold (not L0's) exiting to L1 with reason 43, L1's own task priority untouched.
nestor_vmx_l1_test(nested.vmx_l1_tpr_shadow vmx_l1_tpr_shadow ARGS
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on vmx$"
  --expect "^\\[l1\\] use tpr shadow allowed: 1$"
  --expect "^\\[l1\\] virtual-apic page unaligned: VMfailValid\\(7\\), error 7$"
  --expect "^\\[l1\\] tpr threshold 0x13: VMfailValid\\(7\\), error 7$"
  --expect "^\\[l1\\] tpr threshold 6 above vtpr 0x50: VMfailValid\\(7\\), error 7$"
  --expect "^\\[l1\\] L2's exit reason 43 after its MOV to CR8 below 3: yes, VTPR 0x10, L2 read CR8 5, 7, 3, L1's CR8 15$"
  --expect "^\\[l1\\] vmresume with the threshold above vtpr: VMfailValid\\(7\\)$"
  --expect "^\\[l1\\] L2's exit reason 18, L2 read CR8 1, L1's interrupt taken by L2: no, still pending for L1: yes$")

# An L1 on Intel VMX in a PC domain (tests/nested/guests/vmx_l1_tpr_threshold.cpp): its self-IPI
# waits behind CR8 15 (L0's TPR threshold 4 in L1's VMCS); L1 does not exit on interrupts, and its
# L2 lowers CR8, takes the interrupt and exits with VMCALL. L1's next entry must not fail on a
# threshold above its CR8 that L0 lowered only in L2's VMCS.
nestor_vmx_l1_test(nested.vmx_l1_tpr_threshold vmx_l1_tpr_threshold ARGS
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on vmx$"
  --expect "^\\[l1\\] L2's exit reason 18, from its handler of L1's interrupt: yes, L1's CR8 0$")
