# Linux (label "linux"): Debian's kernel and the linux appliance's initramfs, booted on SVM (QEMU)
# and VMX (Bochs). The images come from Debian packages the build downloads once into a cache
# outside the build tree (appliances/linux/linux.cmake, fetch-packages.cmake): a machine that
# cannot get them fails the build, saying why, rather than skipping these tests.
include(${PROJECT_SOURCE_DIR}/appliances/linux/linux.cmake)  # appliance_files: vmlinuz, initramfs
string(REPLACE ";" "," linux_modules "${appliance_files}")
set(linux_manifests ${PROJECT_SOURCE_DIR}/tests/appliances)

# nestor_linux_test(CASE MANIFEST file [GUESTS g...] [ARGS ...] [SVM_ARGS ...] [VMX_ARGS ...]):
# linux.svm_CASE and linux.vmx_CASE, the manifest booted with the Linux images and the SDK guests.
function(nestor_linux_test case)
  cmake_parse_arguments(ARG "" "MANIFEST" "GUESTS;ARGS;SVM_ARGS;VMX_ARGS" ${ARGN})
  set(bin ${CMAKE_CURRENT_BINARY_DIR}/linux_${case}.bin)
  nestor_pack_manifest(OUTPUT ${bin} MANIFEST ${ARG_MANIFEST})
  add_custom_target(pack_linux_${case} ALL DEPENDS ${bin})
  set(initrd "${bin} manifest,${linux_modules}")
  foreach(guest IN LISTS ARG_GUESTS)
    string(APPEND initrd ",${appliance_guests}/${guest}.elf ${guest}")
  endforeach()
  nestor_boot_test(linux.svm_${case} linux TIMEOUT 120 ARGS --kernel ${NESTOR_KERNEL_main_ELF32} --initrd "${initrd}"
    ${ARG_ARGS} ${ARG_SVM_ARGS})
  nestor_boot_test(linux.vmx_${case} linux TIMEOUT 400 ARGS --emulator bochs --kernel-elf64 ${NESTOR_KERNEL_main_ELF}
    --initrd "${initrd}" ${ARG_ARGS} ${ARG_VMX_ARGS})
endfunction()

# linux_boot_checks(VAR DOMAIN MEMORY_MIB): a Linux domain's boot, judged on its log: the domain
# built, its second vCPU started by the guest, the platform named by its SMBIOS tables (and PCI
# configuration mechanism #1 taken, not refused for want of a BIOS date), the init script's ready
# line with 2 CPUs, a local timer interrupt count above zero on both CPUs (/proc/interrupts' LOC
# line), and no kernel warning, oops or unstable clock (on both backends). The kernel gives the TSC's rate on the
# command line (linux_loader.cpp, toolstack.cpp): Linux then does not calibrate it against the PIT
# and the PM timer, whose reads exit (that calibration failed or came out wrong under QEMU, and
# the TSC was then marked unstable), nor take it from Bochs' CPUID 0x15/0x16 (3.5 GHz, not 100).
function(linux_boot_checks out domain mib)
  set(${out} ${${out}}
    --expect "^appliance: domain ${domain}: ${mib} MiB, Linux bzImage entry 0x1000200, no nested virtualization on (svm|vmx)$"
    --expect "^appliance: domain ${domain}: vCPU 1 started at 0x[0-9a-f]+$"
    --expect "^\\[${domain}\\] \\[ *[0-9.]+\\] DMI: Nestor Nestor PC, BIOS 1\\.0 12/07/2026$"
    --expect "^\\[${domain}\\] \\[ *[0-9.]+\\] PCI: Using configuration type 1 for base access$"
    --reject "^\\[${domain}\\] .*(PCI: Fatal|DMI not present)"
    --expect "^\\[${domain}\\] NESTOR-LINUX-READY: 2 CPUs, Linux [0-9]"
    --expect "^\\[${domain}\\] +LOC: +[1-9][0-9]* +[1-9][0-9]* +Local timer interrupts$"
    --reject "^\\[${domain}\\] .*(WARNING:|BUG:|Call Trace|Oops|Kernel panic)"
    --reject "^\\[${domain}\\] .*(TSC unstable|[Uu]nstable clock|clocksource.*unstable|Marking TSC unstable)"
    PARENT_SCOPE)
endfunction()
set(linux_kernel_checks --reject "PANIC" --reject "CPU exception")
# linux_rate(VAR DOMAIN): the rate on the command line Linux reports.
function(linux_rate out domain)
  set(${out} ${${out}} --expect "^\\[${domain}\\] \\[ *[0-9.]+\\] Kernel command line: .* tsc_early_khz=[1-9][0-9]*$"
    PARENT_SCOPE)
endfunction()

# 1. One Linux domain (tests/appliances/linux_poweroff.manifest): boot to the ready line, then
#    `poweroff -f` (ACPI S5): the domain ends with status 0, and so does the run.
set(checks ${linux_kernel_checks})
linux_boot_checks(checks linux 128)
set(rate_checks)
linux_rate(rate_checks linux)
nestor_linux_test(poweroff MANIFEST ${linux_manifests}/linux_poweroff.manifest ARGS --expect-status 0 ${checks}
  --expect "^\\[linux\\] \\[ *[0-9.]+\\] reboot: Power down$"
  --expect "^appliance: domain linux exited with status 0 \\(shutdown\\) after [0-9]+ exits$"
  --expect "^appliance: domain linux exits by kind: "
  --reject "^error:" ${rate_checks}
  # Bochs 2.7's XSAVEC writes AVX state over the XSAVE header (Linux's next XRSTOR of the image
  # #GPs): the kernel's check at boot finds it, CPUID hides XSAVEC, and Linux keeps its extended
  # state in the standard format.
  VMX_ARGS --expect "^warn: x86: this CPU's XSAVEC does not write the compacted format"
  --expect "^\\[linux\\] \\[ *[0-9.]+\\] x86/fpu: Enabled xstate features 0x[0-9a-f]+, context size is [0-9]+ bytes, using 'standard' format\\.$")

# 2. The same boot, then `reboot -f`: the domain is stopped with the reset status (a failure: the
#    kernel does not restart domains), and so is the run.
set(checks ${linux_kernel_checks})
linux_boot_checks(checks linux 128)
nestor_linux_test(reboot MANIFEST ${linux_manifests}/linux_reboot.manifest ARGS --expect-status 1 ${checks}
  --expect "^error: appliance: domain linux stopped: reset after [0-9]+ exits"
  --expect "^appliance: 1 of 1 domains built, 1 failed or refused$" ${rate_checks})

# 3. A Linux domain beside an SDK domain (healthy, tests/guests/healthy.cpp) and a hostile PC guest
#    storming IPIs (tests/guests/pc_hostile.cpp, "ipistorm"; its IPIs to all but itself must reach
#    no vCPU of Linux): Linux boots and powers off, healthy and the storm report as alone.
set(checks ${linux_kernel_checks} ${hostile_common})
linux_boot_checks(checks linux 128)
hostile_console(checks ipistorm
  "ipistorm: xAPIC: 2000 self IPIs, 2000 taken, 2000 to all excluding self, 0 taken"
  "ipistorm: x2APIC: 2000 self IPIs, 2000 taken, 2000 to all excluding self, 0 taken"
  "ipistorm: done")
set(rate_checks)
linux_rate(rate_checks linux)
nestor_linux_test(beside_sdk_and_hostile MANIFEST ${linux_manifests}/linux_beside_sdk_and_hostile.manifest
  GUESTS healthy pc_hostile ARGS --expect-status 0 ${checks}
  --expect "^appliance: domain linux exited with status 0 \\(shutdown\\) after [0-9]+ exits$"
  --expect "^appliance: domain ipistorm exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --expect "^appliance: 3 of 3 domains built, 0 failed or refused$"
  --reject "^error:" ${rate_checks})

# 4. Two Linux domains side by side, each in the least memory this kernel and initramfs fit in
#    (72 MiB: the kernel at 16 MiB with its 51.5 MiB init_size, the initrd above; 68 MiB is
#    refused), so both fit beside the hypervisor in Bochs' 256 MiB: one powers off (status 0), the
#    other resets (the reset status), each with its own two vCPUs.
set(checks ${linux_kernel_checks})
linux_boot_checks(checks linux1 72)
linux_boot_checks(checks linux2 72)
set(rate_checks)
linux_rate(rate_checks linux1)
linux_rate(rate_checks linux2)
nestor_linux_test(two_domains MANIFEST ${linux_manifests}/linux_two_domains.manifest ARGS --expect-status 1 ${checks}
  --expect "^appliance: domain linux1 exited with status 0 \\(shutdown\\) after [0-9]+ exits$"
  --expect "^error: appliance: domain linux2 stopped: reset after [0-9]+ exits"
  --expect "^appliance: 2 of 2 domains built, 1 failed or refused$" ${rate_checks})

# 5. The interactive shell (tests/appliances/linux_shell.manifest, console = "input"): at the
#    prompt, a user types a command that counts the CPUs in /proc/cpuinfo and shows the machine's
#    UUID from the SMBIOS tables (the domain's: SHA-256 of "Nestor domain linux" as a version 8
#    UUID, computed apart with Python's hashlib), sees its answer, takes
#    CPU 1 offline and back online through sysfs (Linux parks it with interrupts off, then starts
#    it again with INIT-SIPI-SIPI), sees both online, and types `poweroff -f`: the domain ends
#    with status 0. (Busybox's prompt is followed by its cursor-position query, ESC [6n, which
#    the console shows as ".[6n".)
set(cpu1 /sys/devices/system/cpu/cpu1/online)
nestor_linux_test(shell MANIFEST ${linux_manifests}/linux_shell.manifest ARGS --expect-status 0
  --type-after "^\\[linux\\] [^ ]* # "
  "echo cpus=$(grep -c ^processor /proc/cpuinfo) uuid=$(cat /sys/class/dmi/id/product_uuid)\\n"
  --type-after "^\\[linux\\] cpus=[0-9]+ uuid="
  "echo 0 > ${cpu1}\\necho 1 > ${cpu1}\\necho online=$(cat /sys/devices/system/cpu/online)\\n"
  --type-after "^\\[linux\\] online=" "poweroff -f\\n"
  --expect "^appliance: domain linux takes the console's input \\(its serial port COM1\\)$"
  --expect "^\\[linux\\] NESTOR-LINUX-READY: 2 CPUs, Linux [0-9]"
  --expect "^\\[linux\\] cpus=2 uuid=099cd10c-56c5-8c71-a330-cd0531af64cd$"
  --expect "^\\[linux\\] \\[ *[0-9.]+\\] smpboot: CPU 1 is now offline$"
  --expect "^appliance: domain linux: vCPU 1 waits for a startup IPI again \\(INIT\\)$"
  --expect "^\\[linux\\] online=0-1$"
  --reject "do_boot_cpu failed"
  --expect "^appliance: domain linux exited with status 0 \\(shutdown\\) after [0-9]+ exits$"
  --reject "^\\[linux\\] .*(WARNING:|BUG:|Call Trace|Oops|Kernel panic)"
  --reject "^error:" ${linux_kernel_checks})

# 6. on_reset = "restart" (tests/appliances/linux_reboot_restart.manifest): Linux resets with
#    `reboot -f`, boots again from its images on two vCPUs (the second started again by the
#    guest's INIT-SIPI-SIPI), finds the year its first boot set in the RTC (battery-backed: a reset
#    keeps it) and powers off: status 0. On SVM only (QEMU, 30 s; the SDK guest's reset test
#    covers VMX).
set(bin ${CMAKE_CURRENT_BINARY_DIR}/linux_reboot_restart.bin)
nestor_pack_manifest(OUTPUT ${bin} MANIFEST ${linux_manifests}/linux_reboot_restart.manifest)
add_custom_target(pack_linux_reboot_restart ALL DEPENDS ${bin})
set(checks ${linux_kernel_checks})
linux_boot_checks(checks linux 128)
nestor_boot_test(linux.svm_reboot_restart linux TIMEOUT 120 ARGS --kernel ${NESTOR_KERNEL_main_ELF32}
  --initrd "${bin} manifest,${linux_modules}" --expect-status 0 ${checks}
  --expect "^\\[linux\\] NESTOR-LINUX-BOOT: 1$"
  --expect "^appliance: domain linux reset: restarting \\(1\\)$"
  --expect-before "^appliance: domain linux reset: restarting \\(1\\)$" "^\\[linux\\] NESTOR-LINUX-BOOT: 2$"
  --expect "^\\[linux\\] NESTOR-LINUX-BOOT: 2$"
  --expect "^\\[linux\\] \\[ *[0-9.]+\\] rtc_cmos rtc_cmos: setting system clock to 1999-12-31T"
  --expect "^\\[linux\\] \\[ *[0-9.]+\\] reboot: Power down$"
  --expect "^appliance: domain linux exited with status 0 \\(shutdown\\) after [0-9]+ exits$"
  --reject "restarting \\(2\\)" --reject "^error:")
