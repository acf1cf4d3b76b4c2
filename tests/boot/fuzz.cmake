# The hostile-guest fuzzer booted (label "fuzz", beside the libFuzzer campaigns of tests/fuzz):
# domains running seeded random instruction streams (tests/guests/hostile_fuzz.cpp) beside the
# healthy domain. Whatever the streams do, the kernel must never panic, take a CPU exception or
# hang (the run's timeout), the healthy domain must finish with status 0, and every fuzz domain
# must end with the kernel's report: its iterations done and status 0, or stopped for cause.
#
# NESTOR_FUZZ_ITERATIONS sets each domain's iterations; the default keeps fuzz.svm_guest_streams
# under 30 s and fuzz.vmx_guest_streams under a minute. A longer campaign is one configure away:
#   cmake --preset dev -B build/fuzz -DNESTOR_FUZZ_ITERATIONS=40000 -DNESTOR_FUZZ_TIMEOUT=3600
#   cmake --build build/fuzz && ctest --test-dir build/fuzz -R 'fuzz\.(svm|vmx)_guest_streams' -V
set(NESTOR_FUZZ_ITERATIONS 1200 CACHE STRING "iterations of each hostile_fuzz domain in fuzz.*_guest_streams")
set(NESTOR_FUZZ_TIMEOUT 0 CACHE STRING "timeout of fuzz.*_guest_streams in seconds (0: 60 on QEMU, 120 on Bochs)")
set(fuzz_manifest ${CMAKE_CURRENT_BINARY_DIR}/fuzz_guests.manifest)
configure_file(${PROJECT_SOURCE_DIR}/tests/appliances/fuzz_guests.manifest.in ${fuzz_manifest} @ONLY)
set(fuzz_timeout 60)
set(fuzz_vmx_timeout 120)
if(NESTOR_FUZZ_TIMEOUT GREATER 0)
  set(fuzz_timeout ${NESTOR_FUZZ_TIMEOUT})
  set(fuzz_vmx_timeout ${NESTOR_FUZZ_TIMEOUT})
endif()

set(checks ${hostile_common})
foreach(domain fuzz1 fuzz2 fuzz3 deadly)
  list(APPEND checks --expect
    "^(error: )?appliance: domain ${domain} (exited with status [0-9]+ \\([a-z ]+\\)|stopped: [a-z ]+) after [0-9]+ exits")
endforeach()
list(APPEND checks
  --expect "^\\[deadly\\] fuzz: seed 4, ${NESTOR_FUZZ_ITERATIONS} iterations, deadly instructions allowed$"
  --expect "^appliance: 5 of 5 domains built, [0-4] failed or refused$"
  --reject "^(error: )?PANIC" --reject "^(error: )?CPU exception")
nestor_appliance_test(guest_streams AREA fuzz MANIFEST ${fuzz_manifest} GUESTS hostile_fuzz healthy
  TIMEOUT ${fuzz_timeout} VMX_TIMEOUT ${fuzz_vmx_timeout} ARGS ${checks})

# A hostile L1 on the NESTED_VIRT=ON kernel (QEMU, SVM): random vmcb12s, control area and save
# area, and random VMRUN/VMLOAD/VMSAVE/INVLPGA/CLGI/STGI sequences, two seeds
# (tests/nested/guests/hostile_l1_cases.cpp, case=fuzz). Every exit it sees must be one it asked
# for or VMEXIT_INVALID; each L1 ends with its count line and a healthy L2 run, or is stopped with
# the kernel's report.
set(NESTOR_FUZZ_L1_ITERATIONS 300 CACHE STRING "iterations of each L1 in fuzz.nested_l1_vmcb12")
set(fuzz_l1_manifest ${CMAKE_CURRENT_BINARY_DIR}/hostile_l1_fuzz.manifest)
configure_file(${PROJECT_SOURCE_DIR}/tests/nested/appliances/hostile_l1_fuzz.manifest.in ${fuzz_l1_manifest} @ONLY)
set(checks ${nested_hostile_healthy})
foreach(domain l1fuzz1 l1fuzz2)
  list(APPEND checks --expect
    "^(error: )?appliance: domain ${domain} (exited with status [0-9]+ \\([a-z ]+\\)|stopped: [a-z ]+) after [0-9]+ exits")
endforeach()
nestor_nested_test(fuzz.nested_l1_vmcb12 LABEL fuzz TIMEOUT ${fuzz_timeout} MANIFEST ${fuzz_l1_manifest}
  GUESTS hostile_l1_cases healthy ARGS ${checks}
  --expect "^appliance: 3 of 3 domains built, [0-2] failed or refused$"
  --reject "L1 did not ask for" --reject "^(error: )?PANIC" --reject "^(error: )?CPU exception")
