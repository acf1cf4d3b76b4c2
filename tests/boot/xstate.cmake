# Extended state between domains (x87, SSE, AVX: XSAVE), DR0-DR3 and XCR0 are switched with the
# vCPU: tests/guests/hostile_xstate.cpp, beside the healthy domain of tests/boot/hostile.cmake.
# A short time slice preempts every domain many times in the middle of its rounds (under QEMU
# TCG the TSC runs at the host's rate, so its slice is longer for the same guest progress).
#  - fill fills XMM0-15, then YMM0-15, DR0-DR3 and CR2 (on VMX a live register too, which the
#    backend switched with neither: a domain read another's last page-fault address), and checks
#    they keep its pattern while the others run;
#  - read reads the same registers, never writing them: it must never see fill's pattern;
#  - sum1 and sum2 add in the same registers (integer and double, SSE and AVX) across hundreds
#    of preemptions: their results must be exact;
#  - xsetbv: XSETBV of a component CPUID does not offer (3: MPX, never offered; 8: supervisor)
#    gets #GP(0); the offered x87/SSE/AVX bits are accepted; CPUID's OSXSAVE follows its CR4.
set(checks ${hostile_common})
hostile_console(checks fill
  "fill: xmm0-15, dr0-3 and cr2 filled"
  "fill: xmm0-15, dr0-3 and cr2 kept through 60 rounds: yes"
  "fill: ymm0-15 filled"
  "fill: ymm0-15, dr0-3 and cr2 kept through 60 rounds: yes")
hostile_console(checks read
  "read: values of the filler's pattern seen in xmm0-15, dr0-3 and cr2: 0"
  "read: values of the filler's pattern seen in ymm0-15, dr0-3 and cr2: 0")
hostile_console(checks sum1 "sum: 800000 rounds of SSE and AVX arithmetic: exact")
hostile_console(checks sum2 "sum: 800000 rounds of SSE and AVX arithmetic: exact")
hostile_console(checks xsetbv
  "xsetbv: CPUID OSXSAVE follows CR4: yes"
  "xsetbv: bit 3 (not offered) #GP(0x0)"
  "xsetbv: bit 8 (not offered) #GP(0x0)"
  "xsetbv: the offered x87/SSE/AVX bits: no exception, xgetbv 0x7")
foreach(name fill read sum1 sum2 xsetbv)
  list(APPEND checks --expect "^appliance: domain ${name} exited with status 0 \\(exit port\\) after [0-9]+ exits$")
endforeach()
nestor_appliance_test(hostile_xstate MANIFEST ${hostile_manifests}/hostile_xstate.manifest
  GUESTS hostile_xstate healthy ARGS --expect-status 0 ${checks}
  --expect "^appliance: 6 of 6 domains built, 0 failed or refused$"
  --expect "^appliance: domain (fill|read) was preempted [1-9][0-9]+ times$"
  --reject "^error:"
  SVM_ARGS --append "nestor.time-slice=200000" VMX_ARGS --append "nestor.time-slice=20000")
