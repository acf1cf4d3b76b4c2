# The appliances a preset can compose (NESTOR_APPLIANCE): a manifest and the guest images it
# names. The guests are built in the kernel stage (appliances/guests, sdk/guest/examples); images
# made otherwise come from the appliance's SETUP file (NestorAppliance.cmake).
set(NESTOR_APPLIANCE_demo_MANIFEST ${CMAKE_CURRENT_LIST_DIR}/demo.manifest)
set(NESTOR_APPLIANCE_demo_GUESTS demo_hello demo_ping demo_l1)
set(NESTOR_APPLIANCE_minimal_MANIFEST ${CMAKE_CURRENT_LIST_DIR}/minimal.manifest)
set(NESTOR_APPLIANCE_minimal_GUESTS hello)
# linux: Debian's kernel and an initramfs, made from Debian packages at build time (linux/linux.cmake).
set(NESTOR_APPLIANCE_linux_MANIFEST ${CMAKE_CURRENT_LIST_DIR}/linux.manifest)
set(NESTOR_APPLIANCE_linux_GUESTS)
set(NESTOR_APPLIANCE_linux_SETUP ${CMAKE_CURRENT_LIST_DIR}/linux/linux.cmake)
# linux_kvm: the same kernel as an L1 hypervisor (nested_virt) with KVM's modules (linux_kvm/linux_kvm.cmake).
set(NESTOR_APPLIANCE_linux_kvm_MANIFEST ${CMAKE_CURRENT_LIST_DIR}/linux_kvm.manifest)
set(NESTOR_APPLIANCE_linux_kvm_GUESTS)
set(NESTOR_APPLIANCE_linux_kvm_SETUP ${CMAKE_CURRENT_LIST_DIR}/linux_kvm/linux_kvm.cmake)

# Every guest image the kernel stage builds that host-stage images or tests use.
set(NESTOR_GUEST_IMAGES demo_hello demo_ping demo_l1 hello sdk_selftest nested_probe exit_bench
  healthy hostile_wild hostile_pagetables hostile_triple_fault hostile_virt_instructions hostile_hypercalls
  hostile_ioports hostile_spin elf64_plain waiter l1_hypervisor nested_bench
  l1_msr l1_exceptions l1_passthrough l1_events l1_vmload l1_checks l1_l0_timer l1_nmi)
list(APPEND NESTOR_GUEST_IMAGES interrupt_listener interrupt_sender intr_l1 l2_vmsave)
list(APPEND NESTOR_GUEST_IMAGES npt_l1 hostile_l1_cases)
