# The MSRs a vCPU owns are switched with it: tests/guests/switched_msrs.cpp, two domains side by
# side (tests/appliances/switched_msrs.manifest), each writing values of its own to FS_BASE,
# GS_BASE, KERNEL_GS_BASE, STAR, LSTAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP, TSC_AUX and PAT and
# yielding to the other between its writes and its reads; then a SYSCALL, SWAPGS and SYSRET round
# trip through ring 3 on the values set before its yields. Each domain's exit status is the checks
# that failed, one bit each: both must end with exactly 0.
set(checks)
foreach(name msrs1 msrs2)
  hostile_console(checks ${name}
    "msrs: every MSR holds its reset value at start: yes"
    "msrs: 4 rounds of writes kept through 12 yields: yes"
    "msrs: PAT writes of reserved memory types #GP(0) and change nothing: yes"
    "msrs: SYSCALL, SWAPGS and SYSRET to ring 3 and back with its own STAR, LSTAR, SFMASK and GS bases: yes"
    "msrs: done, status 0")
  list(APPEND checks --expect "^appliance: domain ${name} exited with status 0 \\(exit port\\) after [0-9]+ exits$")
endforeach()
# What reads TSC_AUX on each emulated CPU (QEMU's EPYC: RDTSCP; Bochs' Skylake-X: RDTSCP).
set(svm_checks)
set(vmx_checks)
foreach(name msrs1 msrs2)
  hostile_console(svm_checks ${name} "msrs: rdtscp offered, rdpid absent, what they read is TSC_AUX: yes")
  hostile_console(vmx_checks ${name} "msrs: rdtscp offered, rdpid absent, what they read is TSC_AUX: yes")
endforeach()
nestor_appliance_test(switched_msrs MANIFEST ${hostile_manifests}/switched_msrs.manifest
  GUESTS switched_msrs ARGS --expect-status 0 ${checks}
  --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
  --reject "^error:" --reject "PANIC" --reject "CPU exception" --reject "FAIL"
  SVM_ARGS ${svm_checks} VMX_ARGS ${vmx_checks})
