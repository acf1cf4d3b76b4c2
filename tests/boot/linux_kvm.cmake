# Linux KVM as an L1 on Nestor's nested SVM and VMX (label "nested"): Debian's kernel in a
# nested_virt PC domain loads kvm and kvm_amd (QEMU) or kvm_intel (Bochs), /dev/kvm appears, and
# Nestor's KVM client (tests/linux/kvm_client.cpp) runs its L2 guests and checks their exits, or
# storms L2 entries, or powers Linux off under a running L2, or boots Linux as L2, each beside the
# healthy SDK domain. Its images come from the Debian packages the linux tests download
# (appliances/linux_kvm/linux_kvm.cmake).
include(${PROJECT_SOURCE_DIR}/appliances/linux_kvm/linux_kvm.cmake)  # appliance_files
string(REPLACE ";" "," linux_kvm_modules "${appliance_files}")

# A kernel with the nested component: the preset's, or the one tests/build makes beside it.
set(linux_kvm_kernel ${NESTOR_KERNEL_main_ELF32})
set(linux_kvm_kernel_elf64 ${NESTOR_KERNEL_main_ELF})  # Bochs boots the ELF64 image
if(NOT NESTOR_NESTED_MODE STREQUAL "ON")
  set(linux_kvm_kernel ${NESTOR_KERNEL_NESTED_ON_DIR}/nestor.elf32)
  set(linux_kvm_kernel_elf64 ${NESTOR_KERNEL_NESTED_ON_DIR}/nestor.elf)
endif()

# What every case checks: Linux with KVM beside the healthy SDK domain (which must finish with its
# report, HEALTHY_YIELDS yields), both domains ending with status 0, no kernel warning, oops or
# failed insmod in Linux, no fault in Nestor. VENDOR svm: kvm_amd, vmx: kvm_intel, as the CPU flags
# the init prints say.
set(linux_kvm_cpu_flags_svm "npt nrip_save svm ")
set(linux_kvm_cpu_flags_vmx "ept vmx vpid ")
function(linux_kvm_common out vendor healthy_yields)
  set(${out}
    --expect-status 0
    --expect "^appliance: domain linux: 192 MiB, Linux bzImage entry 0x1000200, nested virtualization on ${vendor}$"
    --expect "^\\[linux\\] NESTOR-KVM: cpu flags: ${linux_kvm_cpu_flags_${vendor}}$"
    --expect "^\\[linux\\] NESTOR-KVM: /dev/kvm present$"
    --expect "^\\[linux\\] KVM-CLIENT: PASS api_version$"
    --expect "^appliance: domain linux exited with status 0 \\(shutdown\\) after [0-9]+ exits$"
    --expect "^\\[healthy\\] healthy: yielded ${healthy_yields} times, 0 refused$"
    --expect "^\\[healthy\\] healthy: done$"
    --expect "^appliance: domain healthy exited with status 0 \\(exit port\\) after [0-9]+ exits$"
    --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
    --reject "KVM-CLIENT: FAIL" --reject "NESTOR-KVM: insmod" --reject "WARNING:" --reject "BUG:"
    --reject "Call Trace" --reject "Oops" --reject "PANIC" --reject "CPU exception" --reject "^error:"
    PARENT_SCOPE)
endfunction()

# linux_kvm_test(VENDOR CASE MANIFEST ARGS ...): the manifest (packed for nested virtualization)
# booted with the Linux and KVM images and the healthy guest: nested.linux_kvm_CASE on SVM (QEMU),
# nested.vmx_linux_kvm_CASE on VMX (Bochs: an Intel CPU with VMX, EPT, VPID and unrestricted guest).
function(linux_kvm_test vendor case manifest)
  cmake_parse_arguments(PARSE_ARGV 3 arg "" "VMX_TIMEOUT" "")
  if(vendor STREQUAL "svm")
    set(name linux_kvm_${case})
    set(boot --kernel ${linux_kvm_kernel})
    set(timeout 300)
  else()
    set(name vmx_linux_kvm_${case})
    set(boot --emulator bochs --kernel-elf64 ${linux_kvm_kernel_elf64})
    set(timeout 400)
    if(arg_VMX_TIMEOUT)
      set(timeout ${arg_VMX_TIMEOUT})
    endif()
  endif()
  set(bin ${CMAKE_CURRENT_BINARY_DIR}/${name}.bin)
  nestor_pack_manifest(OUTPUT ${bin} MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/${manifest} NESTED on)
  # The second initramfs is a boot module of these tests only: nothing else makes the build produce it.
  add_custom_target(pack_${name} ALL DEPENDS ${bin} ${linux_kvm_dir}/kvm-initramfs.cpio.gz)
  nestor_boot_test(nested.${name} nested TIMEOUT ${timeout} ARGS ${boot}
    --initrd "${bin} manifest,${linux_kvm_modules},${appliance_guests}/healthy.elf healthy" ${arg_UNPARSED_ARGUMENTS})
endfunction()

# Each case runs on both vendors.
foreach(vendor svm vmx)

# 1. The client's checks, each on its own line; hundred_vms also reads Nestor's nested-memory MSR
#    before and after its VMs (the same, or it fails). On VMX: KVM's VMX instructions, its EPT
#    (shadowed by Nestor), VPIDs, unrestricted guest for the real-mode L2s and the external
#    interrupts it acknowledges on exit. Linux has two vCPUs and the client runs on the second
#    (`taskset -c 1`): the application processor, started by Linux, nests as the first does. Then
#    CPU 1 goes offline and back online (KVM leaves VMX or SVM there, the INIT ends the vCPU's
#    nested state) and the client runs there again, its checks passing as before.
set(linux_kvm_checks real_mode_out_then_hlt real_mode_port_in mmio_write_and_read
  l2_writes_memory_client_reads cpuid_from_kvm_table exception_to_l2_handler kvm_interrupt_to_l2_handler
  memory_slot_moved two_vcpus_in_turn long_mode_l2 l1_timer_preempts_spinning_l2 hundred_vms)
linux_kvm_common(checks ${vendor} 5)
foreach(check IN LISTS linux_kvm_checks)
  list(APPEND checks --expect "^\\[linux\\] KVM-CLIENT: PASS ${check}$")
endforeach()
linux_kvm_test(${vendor} client linux_kvm.manifest ${checks}
  --expect "^appliance: domain linux: vCPU 1 started at 0x[0-9a-f]+$"
  --expect "^\\[linux\\] NESTOR-LINUX-READY: 2 CPUs, Linux [0-9]"
  --expect "^\\[linux\\] NESTOR-KVM: the client runs on CPU 1$"
  --expect "^appliance: domain linux: vCPU 1 waits for a startup IPI again \\(INIT\\)$"
  --expect "^\\[linux\\] NESTOR-KVM: CPU 1 offline and back online, online: 0-1$"
  --expect "^\\[linux\\] NESTOR-KVM: the client again on CPU 1: status 0$"
  --expect "^\\[linux\\] KVM-CLIENT: Nestor's nested state: [1-9][0-9]* KiB before the hundred VMs, [1-9][0-9]* KiB after$"
  --expect "^\\[linux\\] KVM-CLIENT: DONE 13 passed, 0 failed$")

# 2. An entry storm: an L2 exits as fast as it can (CPUID after CPUID, each an exit KVM handles
#    and a VMRUN or VMRESUME, an OUT to the client every thousand) for 5 s. The healthy domain,
#    woken by the client's signal as the storm starts, must finish its 100 yields before the
#    storm ends.
linux_kvm_common(checks ${vendor} 100)
linux_kvm_test(${vendor} vmrun_storm linux_kvm_storm.manifest ${checks}
  --expect-before "^\\[linux\\] KVM-CLIENT: storm: started" "^\\[healthy\\] healthy: woken, badge 0x0001$"
  --expect-before "^\\[healthy\\] healthy: done$" "^\\[linux\\] KVM-CLIENT: storm: stopped after [1-9][0-9]* CPUID exits in L2, [1-9][0-9]* OUTs to the client$"
  --expect "^\\[linux\\] KVM-CLIENT: PASS vmrun_storm$"
  --expect "^\\[linux\\] KVM-CLIENT: DONE 2 passed, 0 failed$")

# 3. Linux powers off while its L2 runs: a child of the client keeps an L2 spinning in KVM_RUN
#    on CPU 1, the client on CPU 0 sees its count move and calls reboot(2); KVM leaves SVM or VMX
#    operation on every CPU on its way down (its L2 entries #UD from then on) and the domain ends
#    through ACPI with status 0.
linux_kvm_common(checks ${vendor} 5)
linux_kvm_test(${vendor} poweroff_in_l2 linux_kvm_poweroff_in_l2.manifest ${checks}
  --expect "^\\[linux\\] KVM-CLIENT: poweroff_in_l2: L2 on CPU 1, the power-off from CPU 0$"
  --expect-before "^\\[linux\\] KVM-CLIENT: L2 spins in a child's KVM_RUN \\(its count moved from [1-9][0-9]* to [1-9][0-9]*\\): powering off$"
    "^\\[linux\\] \\[ *[0-9.]+\\] kvm: exiting hardware virtualization$"
  --expect "^\\[linux\\] \\[ *[0-9.]+\\] reboot: Power down$")

# 4. Three levels: kvm-boot-linux (tests/linux/kvm_boot_linux.cpp) boots the linux appliance's
#    kernel and initramfs as L2 on Linux KVM, with KVM's in-kernel interrupt controllers and PIT
#    and a UART of its own, whose lines reach Nestor's log behind "[L2] ". L2's init reports, shows
#    its interrupts (its timer and UART interrupts came) and reboots; its triple fault ends it
#    (KVM_EXIT_SHUTDOWN), and L1 powers off. Bochs needs more than its default 256 MiB for the
#    256 MiB domain; it runs the case in about 5 minutes (L2 ready after about 100 s of L1's time).
linux_kvm_test(${vendor} l2_linux linux_kvm_l2_linux.manifest VMX_TIMEOUT 900 --memory 512
  --expect-status 0
  --expect "^appliance: domain linux: 256 MiB, Linux bzImage entry 0x1000200, nested virtualization on ${vendor}$"
  --expect "^\\[linux\\] NESTOR-KVM: /dev/kvm present$"
  --expect "^\\[linux\\] KVM-BOOT-LINUX: booting /l2/vmlinuz as L2 \\(128 MiB"
  --expect-before "^\\[linux\\] \\[L2\\] NESTOR-LINUX-READY: 1 CPUs, Linux [0-9]"
    "^\\[linux\\] KVM-BOOT-LINUX: PASS l2_linux: ready after [0-9]+ ms, ended \\(shutdown\\) after [0-9]+ ms$"
  --expect "^\\[linux\\] \\[L2\\] +0: +[1-9][0-9]* +XT-PIC +timer$"
  --expect "^\\[linux\\] \\[L2\\] +4: +[1-9][0-9]* +XT-PIC +ttyS0$"
  --expect "^\\[linux\\] \\[L2\\] \\[ *[0-9.]+\\] reboot: Restarting system$"
  --expect "^appliance: domain linux exited with status 0 \\(shutdown\\) after [0-9]+ exits$"
  --expect "^\\[healthy\\] healthy: done$"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
  --reject "KVM-BOOT-LINUX: FAIL" --reject "NESTOR-KVM: insmod" --reject "WARNING:" --reject "BUG:"
  --reject "Call Trace" --reject "Oops" --reject "PANIC" --reject "CPU exception" --reject "^error:")

endforeach()
