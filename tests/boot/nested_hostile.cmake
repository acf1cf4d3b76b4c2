# Hostile L1 hypervisors (label "nested"): tests/nested/guests/hostile_l1_cases.cpp, one case per
# domain (its command line), each case beside the healthy domain of tests/guests/healthy.cpp,
# which must finish with status 0 whatever the L1 does. The kernel must never panic, take a CPU
# exception or hang; what it does with each case is checked exactly: an exception or
# VMEXIT_INVALID the L1 sees and survives, or the L1 domain stopped with its report.

set(nested_hostile_healthy
  --expect "^\\[healthy\\] healthy: yielded 5 times, 0 refused$"
  --expect "^\\[healthy\\] healthy: done$"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --reject "PANIC" --reject "[Pp]anic" --reject "[Aa]ssert" --reject "CPU exception")

# nestor_hostile_l1_test(NAME MANIFEST ARGS ...): tests/nested/appliances/hostile_l1_MANIFEST.manifest
# with the hostile L1 image and the healthy domain; ARGS holds what else must (not) be printed.
function(nestor_hostile_l1_test name manifest)
  cmake_parse_arguments(ARG "" "" "ARGS" ${ARGN})
  nestor_nested_test(${name} MANIFEST ${PROJECT_SOURCE_DIR}/tests/nested/appliances/hostile_l1_${manifest}.manifest
    GUESTS hostile_l1_cases healthy ARGS
    ${nested_hostile_healthy} ${ARG_ARGS}
    --reject "^\\[[a-z0-9]+\\] (unexpected|hostile_l1: unknown)" --reject "WRONG")
endfunction()

# The checks of a hostile L1 that must survive its case: it saw what the APM says, then ran a
# healthy L2 (its data page read through its own NPT) and exited 0.
set(nested_hostile_survives
  --expect-status 0
  --expect "^\\[l1\\] L2 exit 0x72 cpuid: rax 0x686f7374696c6521$"
  --expect "^appliance: domain l1 exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
  --reject "^error:")

# VMRUN of a vmcb12 that is not its memory: past its 16 MiB, the local APIC's address (no device
# of the domain's), below 4 GiB and far above: #GP each time (APM: VMRUN #GPs on an illegal
# address), caught by the L1, which lives on.
nestor_hostile_l1_test(nested.hostile_vmcb12_outside_memory_is_gp vmcb12 ARGS ${nested_hostile_survives}
  --expect "^\\[l1\\] vmrun with vmcb12 at 0x1000000: #GP general protection$"
  --expect "^\\[l1\\] vmrun with vmcb12 at 0xfee00000: #GP general protection$"
  --expect "^\\[l1\\] vmrun with vmcb12 at 0xfffff000: #GP general protection$"
  --expect "^\\[l1\\] vmrun with vmcb12 at 0x7ffffff000: #GP general protection$"
  --expect "^\\[l1\\] hostile_l1 vmcb12: L1 lives on$")

# VM_HSAVE_PA outside its memory, over the local APIC, unaligned or far above: #GP on the WRMSR,
# and the MSR keeps the last value it took (its last page).
nestor_hostile_l1_test(nested.hostile_hsave_outside_memory_is_gp hsave ARGS ${nested_hostile_survives}
  --expect "^\\[l1\\] wrmsr VM_HSAVE_PA 0x1000000: #GP general protection$"
  --expect "^\\[l1\\] wrmsr VM_HSAVE_PA 0xfee00000: #GP general protection$"
  --expect "^\\[l1\\] wrmsr VM_HSAVE_PA 0xfff008: #GP general protection$"
  --expect "^\\[l1\\] wrmsr VM_HSAVE_PA 0x7ffffff000: #GP general protection$"
  --expect "^\\[l1\\] wrmsr VM_HSAVE_PA 0xfff000: no exception$"
  --expect "^\\[l1\\] rdmsr VM_HSAVE_PA: 0xfff000$"
  --expect "^\\[l1\\] hostile_l1 hsave: L1 lives on$")

# MSRPM / IOPM in use (MSR_PROT / IOIO_PROT) past its memory, running past its end by a page, or
# over the local APIC: VMRUN fails with VMEXIT_INVALID (-1); the same maps inside its memory run L2.
nestor_hostile_l1_test(nested.hostile_permission_maps_outside_memory_are_vmexit_invalid maps ARGS
  --expect-status 0
  --expect "^\\[l1\\] MSRPM at 0x1000000: exit code -1$"
  --expect "^\\[l1\\] MSRPM at 0xfff000: exit code -1$"
  --expect "^\\[l1\\] MSRPM at 0xfee00000: exit code -1$"
  --expect "^\\[l1\\] IOPM at 0x1000000: exit code -1$"
  --expect "^\\[l1\\] IOPM at 0xffe000: exit code -1$"
  --expect "^\\[l1\\] IOPM at 0xfee00000: exit code -1$"
  --expect "^\\[l1\\] MSRPM and IOPM inside its memory: L2 exit 0x72 cpuid, rax 0x686f7374696c6521$"
  --expect "^\\[l1\\] hostile_l1 maps: L1 lives on$"
  --expect "^appliance: domain l1 exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
  --reject "^error:")

# L1's NPT sends L2's data page past L1's memory (nptleaf) or to the local APIC's address
# (nptmmio), or holds a table pointer past L1's memory (npttable, met on L2's first fetch, by the
# walk of L2's own page table): the shadow never maps it, and the domain is stopped with the
# component's report (the access named as L2 made it). An entry with reserved address bits is
# L1's business: #NPF with RSVD, and the L1 lives on.
set(checks)
foreach(domain nptleaf nptmmio)
  list(APPEND checks
    --expect "^error: appliance: domain ${domain} stopped: unsupported operation after [0-9]+ exits \\(last exit nested_page_fault code 0x400 at rip 0x40001003\\)$"
    --expect "^error: appliance: domain ${domain}: nested SVM: L1's nested page table sends L2 outside L1's memory$"
    --expect "^error: appliance: domain ${domain}: read of guest-physical 0x40005000, outside its memory$")
endforeach()
nestor_hostile_l1_test(nested.hostile_npt_outside_l1_memory_stops_the_domain npt ARGS ${checks}
  --expect-status 1
  --expect "^\\[nptleaf\\] L1's NPT maps L2-physical 0x40005000 to L1-physical 0x1000000, L2 reads it$"
  --expect "^\\[nptmmio\\] L1's NPT maps L2-physical 0x40005000 to the local APIC's address 0xfee00000, L2 reads it$"
  --expect "^\\[npttable\\] L1's NPT root points at a table at 0x1000000, L2 starts$"
  --expect "^error: appliance: domain npttable stopped: unsupported operation after [0-9]+ exits \\(last exit nested_page_fault code 0x400 at rip 0x40001003\\)$"
  --expect "^error: appliance: domain npttable: nested SVM: L1's nested page table is not in L1's memory$"
  --expect "^error: appliance: domain npttable: write of guest-physical 0x40010000, outside its memory$"
  --expect "^\\[nptrsvd\\] L2 exit 0x400 npf: exitinfo1 0x10000000d \\(read, present, user, reserved bit, final address\\), exitinfo2 0x40005000$"
  --expect "^\\[nptrsvd\\] L2 exit 0x72 cpuid: rax 0x686f7374696c6521$"
  --expect "^appliance: domain nptrsvd exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --expect "^appliance: 5 of 5 domains built, 3 failed or refused$"
  --reject "L1 resumed")

# AVIC, x2AVIC, vGIF, vNMI (with V_GIF / V_NMI set), LBR virtualization, virtual VMLOAD/VMSAVE
# and SEV / SEV-ES / GMET asked for in vmcb12, with AVIC's tables over host addresses: none is
# offered (CPUID 0x8000000A EDX is NP | NRIPS), the allow-lists drop them, and L2 runs as without
# them: its read through L1's NPT and its CPUID and HLT exits come back.
nestor_hostile_l1_test(nested.hostile_features_not_offered_are_ignored features ARGS ${nested_hostile_survives}
  --expect "^\\[l1\\] cpuid 8000000a: edx 0x9 \\(avic 0, vgif 0, x2avic 0, vnmi 0, virtual vmload/vmsave 0, lbr virtualization 0\\)$"
  --expect "^\\[l1\\] vmcb12: int_ctl 0xc6000a00, virt_ext 0x3, nested_control 0xf$"
  --expect "^\\[l1\\] L2 exit 0x78 hlt$"
  --expect "^\\[l1\\] hostile_l1 features: L1 lives on$")

# 64 VMRUNs of vmcb12s whose control area is random bytes (a fixed seed; L1 always intercepts
# CPUID, HLT and shutdown so that it sees every L2 run end). Fully random: VMEXIT_INVALID or an
# exit L1 asked for. With the fields VMRUN checks made valid (the rest random: intercepts,
# int_ctl, TLB_CONTROL, TSC offset, AVIC fields ...): L2 runs to its CPUID and HLT, with and
# without L1's nested paging. Never anything else.
nestor_hostile_l1_test(nested.hostile_corrupt_vmcb12_control_area corrupt ARGS ${nested_hostile_survives}
  --expect "^\\[l1\\] corrupt: 16 random control areas: [0-9]+ VMEXIT_INVALID, [0-9]+ L2 exits L1 asked for$"
  --expect "^\\[l1\\] corrupt: 48 random control areas with the checked fields valid: 48 ran L2 to its CPUID and HLT exits$"
  --expect "^\\[l1\\] corrupt: 0 unexpected$"
  --expect "^\\[l1\\] hostile_l1 corrupt: L1 lives on$"
  --reject "^\\[l1\\] corrupt run")

# An L2 that loops with no exit L1 intercepts: L0 preempts it like any guest (the healthy domain
# finishes) and the watchdog (20 slices here) stops the L1 domain in the middle of L2, freeing
# its nested state.
nestor_hostile_l1_test(nested.hostile_l2_spinning_stopped_by_watchdog spin ARGS --append "nestor.watchdog=20"
  --expect-status 1
  --expect "^\\[l1\\] spin: L2 loops at L2 rip 0x[0-9a-f]+ with no exit L1 intercepts$"
  --expect "^error: appliance: domain l1 ran 20 time slices without an exit \\(watchdog\\)$"
  --expect "^error: appliance: domain l1 stopped: watchdog after [0-9]+ exits \\(last exit preemption code 0x60 at rip 0x4[0-9a-f]{7}\\)$"
  --expect "^appliance: 2 of 2 domains built, 1 failed or refused$"
  --reject "spin: L2 came back")

# The L1 domain ends while L2 runs, by L2's doing: a triple fault L1 does not intercept (an L2
# with no IDT runs ud2) stops it as a triple fault; an L2 write to the exit port, which L1 lets it
# reach, ends it with L2's status (42). The kernel releases the nested state with the domain.
nestor_hostile_l1_test(nested.hostile_domain_ends_while_l2_runs destroy ARGS
  --expect-status 1
  --expect "^\\[l2triple\\] triple: L2 runs ud2 with no IDT, L1 intercepts neither the faults nor shutdown$"
  --expect "^error: appliance: domain l2triple stopped: triple fault after [0-9]+ exits \\(last exit triple_fault code 0x7f at rip 0x4[0-9a-f]{7}\\)$"
  --expect "^\\[l2exit\\] exitport: L2 writes 0x2a to port 0xf4, which L1 does not intercept$"
  --expect "^appliance: domain l2exit exited with status 42 \\(exit port\\) after [0-9]+ exits$"
  --expect "^appliance: 3 of 3 domains built, 2 failed or refused$"
  --reject "came back with exit")
