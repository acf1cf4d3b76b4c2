# Nested VMX under Bochs (an Intel CPU with VMX, EPT and unrestricted guest): an L1 written with
# the SDK runs every VMX instruction, the good cases and the failures, beside a healthy domain
# that must finish too. Each line is what the instruction did on the L1's side.
set(vmx_l1_manifest ${CMAKE_CURRENT_BINARY_DIR}/vmx_l1_instructions.bin)
nestor_pack_manifest(OUTPUT ${vmx_l1_manifest}
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/nested/appliances/vmx_l1_instructions.manifest NESTED on)
add_custom_target(pack_vmx_l1_instructions ALL DEPENDS ${vmx_l1_manifest})
set(vmx_l1_initrd "${vmx_l1_manifest} manifest")
string(APPEND vmx_l1_initrd ",${NESTOR_KERNEL_main_GUESTS}/vmx_l1_instructions.elf vmx_l1_instructions")
string(APPEND vmx_l1_initrd ",${NESTOR_KERNEL_main_GUESTS}/healthy.elf healthy")

nestor_boot_test(nested.vmx_l1_instructions nested TIMEOUT 300 ARGS --emulator bochs
  --kernel-elf64 ${NESTOR_KERNEL_NESTED_ON_DIR}/nestor.elf --initrd "${vmx_l1_initrd}" --expect-status 0
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
  --expect "^\\[l1\\] vmptrst after vmxoff: #UD invalid opcode$"
  --expect "^\\[l1\\] done$"
  --expect "^appliance: domain l1 exited with status 0 \\(exit port\\)"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
  --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
  --reject "^error:"
  --reject "not implemented yet")

# An L1 on Intel VMX runs an L2 (tests/nested/guests/vmx_l2_runs.cpp), beside a healthy domain:
# exits reflected with reason, instruction length and qualification; a guest-state check failing
# as a VM exit with reason 0x80000021; L2's memory through L1's EPT (the shadow EPT), an EPT
# violation reflected with its qualification and guest-physical address, and L1's new mapping.
set(vmx_l2_manifest ${CMAKE_CURRENT_BINARY_DIR}/vmx_l2_runs.bin)
nestor_pack_manifest(OUTPUT ${vmx_l2_manifest}
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/nested/appliances/vmx_l2_runs.manifest NESTED on)
add_custom_target(pack_vmx_l2_runs ALL DEPENDS ${vmx_l2_manifest})
set(vmx_l2_initrd "${vmx_l2_manifest} manifest")
string(APPEND vmx_l2_initrd ",${NESTOR_KERNEL_main_GUESTS}/vmx_l2_runs.elf vmx_l2_runs")
string(APPEND vmx_l2_initrd ",${NESTOR_KERNEL_main_GUESTS}/healthy.elf healthy")

nestor_boot_test(nested.vmx_l2_runs nested TIMEOUT 300 ARGS --emulator bochs
  --kernel-elf64 ${NESTOR_KERNEL_NESTED_ON_DIR}/nestor.elf --initrd "${vmx_l2_initrd}" --expect-status 0
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
  --expect "^\\[l1\\] done$"
  --expect "^appliance: domain l1 exited with status 0 \\(exit port\\)"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
  --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
  --reject "^error:"
  --reject "not implemented yet")
