# An L1 hypervisor's own (virtual) interrupt while its L2 runs, on QEMU (label "nested"): with
# INTR intercepted it becomes a #VMEXIT(INTR) into L1 (L2 interrupted in its loop); with GIF
# clear the interrupt waits, and L1 takes it right after STGI. A sender domain signals L1.
set(intr_l1_manifest ${CMAKE_CURRENT_BINARY_DIR}/intr_l1.bin)
nestor_pack_manifest(OUTPUT ${intr_l1_manifest} MANIFEST ${PROJECT_SOURCE_DIR}/tests/nested/appliances/intr_l1.manifest
                     NESTED on)
add_custom_target(pack_intr_l1 ALL DEPENDS ${intr_l1_manifest})
nestor_boot_test(nested.l1_interrupt_during_l2 nested ARGS --kernel ${NESTOR_KERNEL_NESTED_ON_DIR}/nestor.elf32
  --initrd "${intr_l1_manifest} manifest,${NESTOR_KERNEL_main_GUESTS}/intr_l1.elf intr_l1,${NESTOR_KERNEL_main_GUESTS}/interrupt_sender.elf interrupt_sender"
  --expect-status 0
  --expect "^\\[sender\\] round 1: signalled$"
  --expect "^\\[l1\\] L2 exit 0x60: intr, L2 rip in its loop: yes$"
  --expect "^\\[l1\\] before stgi: 0 interrupts$"
  --expect "^\\[l1\\] after stgi: 1 interrupt, badges 0x0002$"
  --expect "^appliance: domain l1 exited with status 0 \\(exit port\\)"
  --expect "^appliance: domain sender exited with status 0 \\(exit port\\)"
  --reject "unexpected (interrupt|exception)"
  --reject "^error:")
