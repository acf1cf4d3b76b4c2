# Hostile guests of the PC platform (tests/guests/pc_hostile.cpp, tests/appliances/pc_hostile_*.manifest),
# each in a PC domain beside the healthy bare domain of hostile.cmake (hostile_common), which must
# finish with status 0. Each case runs as pc.svm_hostile_* (QEMU, AMD SVM) and pc.vmx_hostile_*
# (Bochs, Intel VMX) with the same expectations: the hostile domain's own lines exactly, its exit
# with status 0 through the exit port, no error from the kernel, no panic, no CPU exception.

# pc_hostile_test(CASE DOMAIN LINES "line"... [ARGS ...]): one case of the list above.
function(pc_hostile_test case domain)
  cmake_parse_arguments(ARG "" "" "LINES;ARGS;SVM_ARGS;VMX_ARGS" ${ARGN})
  set(checks ${hostile_common})
  hostile_console(checks ${domain} ${ARG_LINES})
  nestor_appliance_test(hostile_${case} AREA pc
    MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/pc_hostile_${case}.manifest GUESTS pc_hostile healthy
    ARGS --expect-status 0 ${checks}
    --expect "^appliance: domain ${domain} exited with status 0 \\(exit port\\) after [0-9]+ exits$"
    --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
    --reject "^error:" ${ARG_ARGS}
    SVM_ARGS ${ARG_SVM_ARGS} VMX_ARGS ${ARG_VMX_ARGS})
endfunction()

# 1. Random values (seeded; the seed is in the manifest and printed) to every port of the platform
#    with sizes 1, 2 and 4, every offset of the local APIC and I/O APIC pages with sizes 1, 2, 4 and
#    8, and every MSR of the platform (reads and writes under probes, #GPs counted), with interrupts
#    off; NMIs are counted. Values that would reset it, power it off or INIT it are drawn again,
#    I/O APIC entries asking for INIT or NMI made fixed. The #GP counts depend on the vendor's
#    MSRs: any number, but no other exception.
pc_hostile_test(fuzz fuzz LINES
  "fuzz: seed 0x1d2c3b4a59687786"
  "fuzz: an NMI to itself through the ICR: taken 1"
  "fuzz: ports: 2160 random writes, each followed by a read"
  "fuzz: local APIC page: 16373 writes at every offset, sizes 1, 2, 4 and 8"
  "fuzz: local APIC registers: 16 values each"
  "fuzz: I/O APIC page: 16373 writes at every offset, sizes 1, 2, 4 and 8"
  "fuzz: I/O APIC registers: 256 indices, 8 values each"
  "fuzz: x2APIC mode entered: yes"
  "fuzz: exceptions other than #GP: 0"
  "fuzz: still alive"
  ARGS
  --expect "^\\[fuzz\\] fuzz: msrs: 992 MSRs, 8928 accesses, [0-9]+ #GP$"
  --expect "^\\[fuzz\\] fuzz: x2APIC msrs: 256 MSRs, [0-9]+ #GP$"
  --expect "^\\[fuzz\\] fuzz: NMIs taken in all: [1-9][0-9]*$")

# 2. An IPI storm with interrupts enabled: every self IPI is taken once (each arrives before the
#    next is sent), those to all but itself reach nobody (it is the only vCPU).
pc_hostile_test(ipi_storm ipistorm LINES
  "ipistorm: xAPIC: 2000 self IPIs, 2000 taken, 2000 to all excluding self, 0 taken"
  "ipistorm: x2APIC: 2000 self IPIs, 2000 taken, 2000 to all excluding self, 0 taken"
  "ipistorm: done")

# 3. A periodic local APIC timer at its shortest period (count 1, divide 1, a TSC tick at most)
#    with a handler that EOIs, for 100 ms of TSC: the platform's 200 us floor keeps the interrupts
#    from taking the CPU back before the handler ran, the domain ends by itself. On QEMU its own
#    loop runs between interrupts too; under Bochs an exit of the debug kernel costs a good part of
#    200 us of Bochs's TSC, so there it need not. 100 ms, as a loaded host may take QEMU's CPU away
#    for tens of ms, during which the TSC runs on.
pc_hostile_test(timer_storm timerstorm LINES
  "timerstorm: periodic timer, initial count 1, divide 1, for 100 ms of TSC"
  "timerstorm: done"
  ARGS --expect "^\\[timerstorm\\] timerstorm: [1-9][0-9]* interrupts, [0-9]+ turns of its own loop$"
  SVM_ARGS --expect "^\\[timerstorm\\] timerstorm: interrupts taken: yes, its own loop ran: yes$")

# 4. An interrupt never EOIed: while the timer's vector 0x80 is in service, HLT with interrupts on
#    is woken only by a higher class (0x90, the PIT through the I/O APIC); the timer again (0x80),
#    a lower class (0x40) and the class below (0x7f) wait in the IRR and arrive, highest first,
#    once it is EOIed.
pc_hostile_test(no_eoi noeoi LINES
  "noeoi: timer vector 0x80 taken once, not EOIed: yes, in service: yes, PPR 0x80"
  "noeoi: halted with interrupts on: woken 5 times by 0x90 from the PIT: yes"
  "noeoi: while 0x80 was in service: 0x40 taken 0, 0x7f taken 0, 0x80 taken again 0"
  "noeoi: pending: 0x40 yes, 0x7f yes, 0x80 yes"
  "noeoi: after its EOI: 0x80 taken 2, 0x7f taken 1, 0x40 taken 1, PPR 0x0, TPR 0x0"
  "noeoi: done")

# 5. INIT-SIPI-SIPI to its application processor 300 times, each start waited for (the AP counts
#    itself, tells the BSP and halts with interrupts off): every cycle starts it again, on a new
#    backend vCPU, and the kernel logs the first four starts and INITs of that vCPU, then says it
#    logs no more of them.
pc_hostile_test(init_storm initstorm LINES
  "initstorm: 300 INIT-SIPI-SIPI cycles, 300 starts of application processor 1"
  "initstorm: done"
  ARGS
  --expect "^appliance: domain initstorm: vCPU 1 started at 0x70000$"
  --expect "^appliance: domain initstorm: vCPU 1 started 4 times: its further starts and INITs are not logged$")
