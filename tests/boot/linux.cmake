# Linux (label "linux"): Debian's kernel and the linux appliance's initramfs, booted on SVM (QEMU)
# and VMX (Bochs). Only a build whose preset makes the linux appliance's images has them (they are
# downloaded: appliances/linux/linux.cmake), so only such a build has these tests.
if(NOT NESTOR_APPLIANCE STREQUAL "linux")
  return()
endif()
include(${PROJECT_SOURCE_DIR}/appliances/linux/linux.cmake)  # appliance_files: vmlinuz, initramfs
string(REPLACE ";" "," linux_modules "${appliance_files}")

# nestor_linux_test(CASE MANIFEST file ARGS ...): linux.svm_CASE and linux.vmx_CASE.
function(nestor_linux_test case)
  cmake_parse_arguments(ARG "" "MANIFEST" "ARGS;SVM_ARGS;VMX_ARGS" ${ARGN})
  set(bin ${CMAKE_CURRENT_BINARY_DIR}/linux_${case}.bin)
  nestor_pack_manifest(OUTPUT ${bin} MANIFEST ${ARG_MANIFEST})
  add_custom_target(pack_linux_${case} ALL DEPENDS ${bin})
  set(initrd "${bin} manifest,${linux_modules}")
  nestor_boot_test(linux.svm_${case} linux TIMEOUT 120 ARGS --kernel ${NESTOR_KERNEL_main_ELF32} --initrd "${initrd}"
    ${ARG_ARGS} ${ARG_SVM_ARGS})
  nestor_boot_test(linux.vmx_${case} linux TIMEOUT 600 ARGS --emulator bochs --kernel-elf64 ${NESTOR_KERNEL_main_ELF}
    --initrd "${initrd}" ${ARG_ARGS} ${ARG_VMX_ARGS})
endfunction()

set(linux_boot_checks
  --expect "^appliance: domain linux: 128 MiB, Linux bzImage entry 0x1000200, no nested virtualization on (svm|vmx)$"
  --expect "^appliance: domain linux: vCPU 1 started at 0x[0-9a-f]+$"
  --expect "^\\[linux\\] NESTOR-LINUX-READY: 2 CPUs, Linux [0-9]"
  --expect "^\\[linux\\] +LOC: +[1-9][0-9]* +[1-9][0-9]* +Local timer interrupts$"
  --reject "WARNING:" --reject "BUG:" --reject "Call Trace" --reject "PANIC" --reject "CPU exception")
# On QEMU (AMD), Linux has no CPUID leaf it trusts for the TSC's rate and calibrates against the
# PIT and the PM timer, whose every read is an exit; under TCG on a busy host an exit can take
# longer than Linux's calibration allows (its SMI threshold, 50000 TSC ticks per reference read),
# and then it marks the TSC unstable. So only VMX, where CPUID 0x15/0x16 give the rate, is held
# to a stable TSC for now.
set(linux_vmx_checks --reject "TSC unstable|[Uu]nstable clock|clocksource.*unstable")

nestor_linux_test(poweroff MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/linux_poweroff.manifest
  ARGS --expect-status 0 ${linux_boot_checks}
  --expect "^\\[linux\\] \\[ *[0-9.]+\\] reboot: Power down$"
  --expect "^appliance: domain linux exited with status 0 \\(shutdown\\)"
  --reject "^error:"
  VMX_ARGS ${linux_vmx_checks})
nestor_linux_test(reboot MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/linux_reboot.manifest
  ARGS --expect-status 1 ${linux_boot_checks}
  --expect "^error: appliance: domain linux stopped: reset after [0-9]+ exits"
  VMX_ARGS ${linux_vmx_checks})
