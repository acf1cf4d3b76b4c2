# The PC platform (docs/platform.md): an SDK guest drives each device of its PC as an operating
# system would (tests/guests/pc_devices.cpp) beside a bare domain, as pc.svm_devices (QEMU) and
# pc.vmx_devices (Bochs). It ends itself through ACPI S5.
set(pc_device_checks
  --expect-status 0
  --expect "^\\[pc\\] ok: timing leaf: TSC kHz$"
  --expect "^\\[pc\\] ok: periodic timer: 10 interrupts$"
  --expect "^\\[pc\\] ok: periodic timer: at its period, not faster$"
  --expect "^\\[pc\\] ok: PIT calibration agrees with the timing leaf within 2%$"
  --expect "^\\[pc\\] ok: PIT IRQ 0 through I/O APIC pin 2$"
  --expect "^\\[pc\\] ok: 16550A transmitter-empty interrupt on IRQ 4$"
  --expect "^\\[pc\\] ok: x2APIC self IPI taken$"
  --expect "^\\[pc\\] ok: TSC-deadline timer fired$"
  --expect "^\\[pc\\] ok: level-triggered IRQ 4: again after an EOI while high, not after$"
  --expect "^\\[pc\\] ok: level-triggered IRQ 4: remote IRR set until the EOI$"
  --expect "^\\[pc\\] ok: level-triggered IRQ 4: remote IRR clear after it$"
  --expect "^\\[pc\\] ok: RTC date in BCD, 21st century$"
  --expect "^\\[pc\\] ok: ACPI MADT: one local APIC$"
  --expect "^\\[pc\\] ok: PCI configuration space: no device at 00:00.0$"
  --expect "^\\[pc\\] ok: an unknown MSR raises #GP$"
  --expect "^warn: appliance: domain pc: read of unknown MSR 0xc0de0001: #GP$"
  --expect "^\\[pc\\] checks: [0-9]+ passed, 0 failed$"
  --expect "^\\[pc\\] powering off through ACPI S5$"
  --expect "^appliance: domain pc exited with status 0 \\(shutdown\\)"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
  --reject "still running after S5"
  --reject "FAIL:"
  --reject "PANIC" --reject "CPU exception")
nestor_appliance_test(devices AREA pc
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/pc_devices.manifest GUESTS pc_devices healthy
  ARGS ${pc_device_checks}
  # The host's date: QEMU's clock is the machine's, Bochs's is set to 2000-01-01 (run-emulator).
  SVM_ARGS --expect "^\\[pc\\] rtc: 20[0-9][0-9]-[0-9]+-[0-9]+$"
  VMX_ARGS --expect "^\\[pc\\] rtc: 2000-1-1$")

# Console input: what is typed on the host's serial console reaches the domain that takes it, at
# its 16550A by receive interrupts; its prompt and the echo show on one line before the line ends;
# 48 bytes typed while the guest does not read all arrive (the host holds back what the FIFO
# cannot take). Then the operator's NMI button, Ctrl-] n (nestor/pc/console_keys.hpp): the guest
# takes the NMI through LINT1, with IOCHK# in port 0x61.
nestor_appliance_test(console_input AREA pc
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/pc_console.manifest GUESTS pc_console healthy
  ARGS --expect-status 0
  --type-after "^\\[console\\] type a line: $" "hello nestor\\n"
  --type-after "^\\[console\\] not reading for a while$" "0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ\\n"
  --type-after "^\\[console\\] press the NMI button$" "\\x1dn"
  --expect "^appliance: domain console takes the console's input \\(its serial port COM1\\)$"
  --expect "^\\[console\\] type a line: hello nestor$"
  --expect "^\\[console\\] ok: a typed line arrives by receive interrupts, echoed after its prompt$"
  --expect "^\\[console\\] ok: 48 bytes typed ahead arrive whole$"
  --expect "^\\[console\\] ok: no receiver overrun$"
  --expect "^appliance: domain console: NMI button pressed$"
  --expect "^\\[console\\] ok: the NMI button's NMI arrives through LINT1$"
  --expect "^\\[console\\] ok: port 0x61 shows IOCHK# as its reason$"
  --expect "^\\[console\\] checks: [0-9]+ passed, 0 failed$"
  --expect "^appliance: domain console exited with status 0 \\(shutdown\\)"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
  --reject "FAIL:" --reject "PANIC" --reject "CPU exception")

# SMP: four vCPUs, the three application processors started by the guest with INIT-SIPI-SIPI
# into real mode, then an IPI to each and one back; then INIT-SIPI-SIPI again to one asleep and
# one parked with interrupts off, which start again at the new vector (tests/guests/pc_smp.cpp).
nestor_appliance_test(smp AREA pc
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/pc_smp.manifest GUESTS pc_smp healthy
  ARGS --expect-status 0
  --expect "^\\[smp\\] smp: the MADT lists 4 processors$"
  --expect "^appliance: domain smp: vCPU 1 started at 0x70000$"
  --expect "^appliance: domain smp: vCPU 3 started at 0x70000$"
  --expect "^\\[smp\\] smp: 3 application processors arrived$"
  --expect "^\\[smp\\] ok: an IPI to an application processor and its IPI back$"
  --expect "^\\[smp\\] ok: each application processor took one ping$"
  --expect "^appliance: domain smp: vCPU 2 waits for a startup IPI again \\(INIT\\)$"
  --expect "^appliance: domain smp: vCPU 2 started at 0x71000$"
  --expect "^\\[smp\\] smp: 2 application processors started again$"
  --expect "^\\[smp\\] ok: each application processor started again took its ping in the new trampoline$"
  --expect "^\\[smp\\] checks: [0-9]+ passed, 0 failed$"
  --expect "^appliance: domain smp exited with status 0 \\(shutdown\\)"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
  --reject "FAIL:" --reject "PANIC" --reject "CPU exception")

# SMP on one physical CPU: the BSP has a TSC-deadline tick a fifth of a time slice long and work
# to finish while the application processor spins on a flag without exits. Each tick arms the
# next: the slice must end at that timer, not at the exit that armed it, or the BSP would run
# only its tick handler while the AP spins (tests/guests/pc_short_tick.cpp).
nestor_appliance_test(smp_short_tick AREA pc
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/pc_short_tick.manifest GUESTS pc_short_tick
  ARGS --expect-status 0
  --expect "^appliance: domain tick: vCPU 1 started at 0x70000$"
  --expect "^\\[tick\\] tick: the BSP ran [0-9]+ iterations in [0-9]+k TSC ticks, through [0-9]+ ticks$"
  --expect "^\\[tick\\] ok: the spinning application processor saw the flag$"
  --expect "^\\[tick\\] checks: [0-9]+ passed, 0 failed$"
  --expect "^appliance: domain tick exited with status 0 \\(shutdown\\)"
  --reject "FAIL:" --reject "PANIC" --reject "CPU exception" --reject "watchdog")

# CR8 is the local APIC's TPR class in xAPIC and x2APIC mode, both ways, and an interrupt of a
# class not above the TPR's waits until CR8 or the TPR drops below it, then arrives at once
# (tests/guests/pc_tpr.cpp): the CR8 write intercept (SVM) or the TPR threshold (VMX).
nestor_appliance_test(tpr AREA pc
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/pc_tpr.manifest GUESTS pc_tpr
  ARGS --expect-status 0
  --expect "^\\[tpr\\] ok: xAPIC: CR8 5 reads as TPR 0x50$"
  --expect "^\\[tpr\\] ok: xAPIC: TPR 0x73 reads as CR8 7$"
  --expect "^\\[tpr\\] ok: xAPIC: an interrupt of class 4 waits while CR8 is 4$"
  --expect "^\\[tpr\\] ok: xAPIC: CR8 raised to 6 and back to 4 lets nothing through$"
  --expect "^\\[tpr\\] ok: xAPIC: CR8 lowered to 3, the interrupt arrives at once$"
  --expect "^\\[tpr\\] ok: x2APIC: CR8 6 reads as TPR 0x60$"
  --expect "^\\[tpr\\] ok: x2APIC: TPR 0x25 reads as CR8 2$"
  --expect "^\\[tpr\\] ok: x2APIC: TPR lowered to 0x40, the interrupt arrives at once$"
  --expect "^\\[tpr\\] ok: x2APIC: an interrupt of class 6 waits while CR8 is 7, then 6$"
  --expect "^\\[tpr\\] ok: x2APIC: CR8 lowered to 5, the interrupt arrives at once$"
  --expect "^\\[tpr\\] checks: [0-9]+ passed, 0 failed$"
  --expect "^appliance: domain tpr exited with status 0 \\(shutdown\\)"
  --reject "FAIL:" --reject "PANIC" --reject "CPU exception")

# RAM above 4 GiB: a PC domain of 3 GiB + 64 MiB has 3 GiB below the PC's hole and the rest from
# 4 GiB, as its memory map and CMOS say; it writes and reads back every page there and finds the
# APICs in the hole (tests/guests/pc_high_memory.cpp), beside a bare domain. QEMU only: the
# kernel takes the domains' memory as one run of host RAM, which QEMU's pc machine has below
# 4 GiB up to 3.5 GiB; Bochs given 3400 MiB (`memory: guest=3400, host=2048`: `megs` stops at
# 2048) showed the kernel 3071 MiB there, too little. Zeroing over 3 GiB twice under TCG (when
# the kernel takes it and when the toolstack carves the domain's regions) takes most of its time.
set(pc_high_memory_bin ${CMAKE_CURRENT_BINARY_DIR}/pc_high_memory.bin)
nestor_pack_manifest(OUTPUT ${pc_high_memory_bin} MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/pc_high_memory.manifest)
add_custom_target(pack_pc_high_memory ALL DEPENDS ${pc_high_memory_bin})
nestor_boot_test(pc.svm_high_memory pc TIMEOUT 300 ARGS --kernel ${elf32}
  --initrd "${pc_high_memory_bin} manifest,${NESTOR_KERNEL_main_GUESTS}/pc_high_memory.elf pc_high_memory,${NESTOR_KERNEL_main_GUESTS}/healthy.elf healthy"
  --expect-status 0 --memory 3400
  --expect "^appliance: domain high: 3136 MiB, multiboot entry 0x[0-9a-f]+, no nested virtualization on svm$"
  --expect "^\\[high\\] ok: memory map: RAM from 1 MiB to 3 GiB$"
  --expect "^\\[high\\] ok: memory map: 64 MiB of RAM from 4 GiB$"
  --expect "^\\[high\\] ok: memory map: no RAM between 3 GiB and 4 GiB$"
  --expect "^\\[high\\] ok: CMOS: 64 MiB above 4 GiB$"
  --expect "^\\[high\\] ok: RAM above 4 GiB reads back what was written$"
  --expect "^\\[high\\] ok: the last bytes below 3 GiB are RAM of their own$"
  --expect "^\\[high\\] ok: I/O APIC at 0xFEC00000 answers \\(version 0x11\\)$"
  --expect "^\\[high\\] ok: local APIC at 0xFEE00000 answers \\(version 0x14\\)$"
  --expect "^\\[high\\] checks: [0-9]+ passed, 0 failed$"
  --expect "^appliance: domain high exited with status 0 \\(shutdown\\)"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
  --reject "FAIL:" --reject "PANIC" --reject "CPU exception")

# A kernel built with PC_PLATFORM=OFF (the minimal preset's) refuses a PC domain by name and runs
# the bare one beside it.
set(pc_off_bin ${CMAKE_CURRENT_BINARY_DIR}/pc_platform_off.bin)
nestor_pack_manifest(OUTPUT ${pc_off_bin} MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/pc_devices.manifest)
add_custom_target(pack_pc_platform_off ALL DEPENDS ${pc_off_bin})
nestor_boot_test(pc.platform_off_refused pc ARGS --kernel ${NESTOR_KERNEL_MINIMAL_DIR}/nestor.elf32
  --initrd "${pc_off_bin} manifest,${NESTOR_KERNEL_main_GUESTS}/pc_devices.elf pc_devices,${NESTOR_KERNEL_main_GUESTS}/healthy.elf healthy"
  --expect-status 1
  --expect "^error: appliance: domain pc refused: it asks for platform \"pc\", and this build has PC_PLATFORM=OFF$"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
  --expect "^appliance: 1 of 2 domains built, 1 failed or refused$")

# on_reset = "restart" (vm_restart.hpp): the PC guest boots three times, reset through port 0xCF9
# and then the keyboard controller; at each boot its memory and devices are as at power-on, only
# its RTC and CMOS RAM (its boot count) and its TSC carried on (tests/guests/pc_reset.cpp). A bare
# guest that triple-faults at every boot is restarted 16 times, then stopped; a healthy one
# finishes.
nestor_appliance_test(reset_restart AREA pc
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/pc_reset.manifest GUESTS pc_reset hostile_triple_fault healthy
  ARGS --expect-status 1
  --expect "^appliance: domain boots restarts when it resets \\(at most 16 times\\)$"
  --expect "^\\[boots\\] reset: boot 1$"
  --expect "^\\[boots\\] reset: resetting through port 0xCF9$"
  --expect "^appliance: domain boots reset: restarting \\(1\\)$"
  --expect "^\\[boots\\] reset: boot 2$"
  --expect "^\\[boots\\] reset: resetting through the keyboard controller$"
  --expect "^appliance: domain boots reset: restarting \\(2\\)$"
  --expect "^\\[boots\\] reset: boot 3$"
  --expect "^\\[boots\\] ok: its image as loaded: initialised data as built, zeroed data 0$"
  --expect "^\\[boots\\] ok: memory outside the image is zero$"
  --expect "^\\[boots\\] ok: local APIC: SVR and TPR at their reset values$"
  --expect "^\\[boots\\] ok: RTC: status B at its power-on value$"
  --expect "^\\[boots\\] ok: RTC: status B kept \\(battery-backed\\) but its interrupt enables$"
  --expect "^\\[boots\\] ok: the TSC ran on through the reset$"
  --expect "^\\[boots\\] checks: [0-9]+ passed, 0 failed$"
  --expect "^appliance: domain boots exited with status 0 \\(shutdown\\)"
  --expect "^appliance: domain looper triple fault: restarting \\(16\\)$"
  --expect "^error: appliance: domain looper triple fault again after 16 restarts, the most a domain gets: it stops$"
  --expect "^error: appliance: domain looper stopped: triple fault"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
  --expect "^appliance: 3 of 3 domains built, 1 failed or refused$"
  --reject "restarting \\(17\\)" --reject "domain boots reset: restarting \\(3\\)" --reject "reset: boot 4"
  --reject "FAIL:" --reject "PANIC" --reject "CPU exception")
