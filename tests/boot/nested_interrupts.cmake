# An L1 hypervisor's own (virtual) interrupt while its L2 runs, on QEMU (label "nested"): with
# INTR intercepted it becomes a #VMEXIT(INTR) into L1 (L2 interrupted in its loop); with GIF
# clear the interrupt waits, and L1 takes it right after STGI. A sender domain signals L1.
nestor_nested_test(nested.l1_interrupt_during_l2
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/nested/appliances/intr_l1.manifest GUESTS intr_l1 interrupt_sender
  ARGS --expect-status 0
  --expect "^\\[sender\\] round 1: signalled$"
  --expect "^\\[l1\\] L2 exit 0x60: intr, L2 rip in its loop: yes$"
  --expect "^\\[l1\\] before stgi: 0 interrupts$"
  --expect "^\\[l1\\] after stgi: 1 interrupt, badges 0x0002$"
  --expect "^appliance: domain l1 exited with status 0 \\(exit port\\)"
  --expect "^appliance: domain sender exited with status 0 \\(exit port\\)"
  --reject "unexpected (interrupt|exception)"
  --reject "^error:")

# L2's VMLOAD / VMSAVE that L1 does not intercept act on the CPU L2 runs on, at L2-physical addresses
# (L1-physical here: no nested paging); an unaligned address is #GP in L2, which L1 intercepts.
nestor_l1_boot_test(nested.l2_vmload_vmsave_not_intercepted l2_vmsave l2_vmsave ARGS
  --expect "^\\[l1\\] L2 vmsave, vmload, vmsave: exit 0x81, A.lstar 0x1111, C.star 0x2222$"
  --expect "^\\[l1\\] L2 vmload unaligned: exit 0x4d$")
