# Linux KVM as an L1 on Nestor's nested SVM (label "nested"): Debian's kernel in a nested_virt PC
# domain loads kvm and kvm_amd, /dev/kvm appears, and Nestor's KVM client
# (tests/linux/kvm_client.cpp) runs its L2 guests and checks their exits. Its images come from the
# Debian packages the linux tests download (appliances/linux_kvm/linux_kvm.cmake). On QEMU only:
# nested VMX does not run L2s yet.
include(${PROJECT_SOURCE_DIR}/appliances/linux_kvm/linux_kvm.cmake)  # appliance_files
string(REPLACE ";" "," linux_kvm_modules "${appliance_files}")

set(bin ${CMAKE_CURRENT_BINARY_DIR}/linux_kvm_client.bin)
nestor_pack_manifest(OUTPUT ${bin} MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/linux_kvm.manifest NESTED on)
# A kernel with the nested component: the preset's, or the one tests/build makes beside it.
set(linux_kvm_kernel ${NESTOR_KERNEL_main_ELF32})
if(NOT NESTOR_NESTED_MODE STREQUAL "ON")
  set(linux_kvm_kernel ${NESTOR_KERNEL_NESTED_ON_DIR}/nestor.elf32)
endif()
# The second initramfs is a boot module of the test only: nothing else makes the build produce it.
add_custom_target(pack_linux_kvm_client ALL DEPENDS ${bin} ${linux_kvm_dir}/kvm-initramfs.cpio.gz)
# Every check of the client, each on its own line.
set(linux_kvm_checks api_version real_mode_out_then_hlt real_mode_port_in mmio_write_and_read
  l2_writes_memory_client_reads cpuid_from_kvm_table exception_to_l2_handler kvm_interrupt_to_l2_handler
  memory_slot_moved two_vcpus_in_turn long_mode_l2 l1_timer_preempts_spinning_l2 hundred_vms)
set(linux_kvm_expects)
foreach(check IN LISTS linux_kvm_checks)
  list(APPEND linux_kvm_expects --expect "^\\[linux\\] KVM-CLIENT: PASS ${check}$")
endforeach()
nestor_boot_test(nested.linux_kvm_client nested TIMEOUT 300 ARGS --kernel ${linux_kvm_kernel}
  --initrd "${bin} manifest,${linux_kvm_modules}" --expect-status 0
  --expect "^appliance: domain linux: 192 MiB, Linux bzImage entry 0x1000200, nested virtualization on svm$"
  --expect "^\\[linux\\] NESTOR-KVM: cpu flags: npt nrip_save svm $"
  --expect "^\\[linux\\] NESTOR-KVM: /dev/kvm present$" ${linux_kvm_expects}
  --expect "^\\[linux\\] KVM-CLIENT: DONE 13 passed, 0 failed$"
  --expect "^appliance: domain linux exited with status 0 \\(shutdown\\)"
  --reject "KVM-CLIENT: FAIL" --reject "NESTOR-KVM: insmod" --reject "WARNING:" --reject "BUG:"
  --reject "Call Trace" --reject "PANIC" --reject "CPU exception" --reject "^error:")
