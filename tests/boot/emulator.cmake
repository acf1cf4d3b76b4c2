# The emulator runs themselves: hermetic whatever the caller's environment, an emulator that dies is
# reported with its own words, and the GDB stub of `./nestor debug` answers with the kernel's symbols.

# The same boot from callers with different environments: a UTF-8 locale and no HOME (Bochs' ALSA
# plugin aborted under a UTF-8 locale), nothing but PATH, and a HOME nobody can write with a
# display named that does not exist. Each must pass on both emulators.
# Each caller is "name|VAR=value|...".
set(hermetic_callers
  "utf8_locale_no_home|LANG=C.UTF-8|LC_ALL=en_US.UTF-8"
  "only_path"
  "unwritable_home|HOME=/proc|DISPLAY=:99|XDG_RUNTIME_DIR=/nonexistent")
set(hermetic_path PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin)
foreach(caller IN LISTS hermetic_callers)
  string(REPLACE "|" ";" caller "${caller}")
  list(POP_FRONT caller caller_name)
  set(caller_env ${caller})
  foreach(emulator qemu bochs)
    set(name boot.hermetic_${emulator}_${caller_name})
    if(emulator STREQUAL "qemu")
      set(boot_args --kernel ${elf32} --expect "^cpu: AMD \\(AuthenticAMD\\)")
      set(seconds 60)
    else()
      set(boot_args --emulator bochs --iso ${iso} --expect "^cpu: Intel \\(GenuineIntel\\)")
      set(seconds 120)
    endif()
    add_test(NAME ${name} COMMAND env -i ${hermetic_path} ${caller_env} ${NESTOR_RUN_EMULATOR} --timeout ${seconds}
             --log ${CMAKE_CURRENT_BINARY_DIR}/${name}.log ${boot_args} --expect-status 0
             --expect "^Nestor [0-9.]+ ")
    set_tests_properties(${name} PROPERTIES LABELS boot TIMEOUT ${seconds})
  endforeach()
endforeach()

# An emulator that cannot start: the run names the emulator's own message, not only "no status".
add_test(NAME boot.emulator_death_reported_qemu COMMAND ${NESTOR_RUN_EMULATOR} --timeout 30 --kernel ${elf32}
         --cpu no-such-cpu-model --expect-status 0)
set_tests_properties(boot.emulator_death_reported_qemu PROPERTIES LABELS boot TIMEOUT 30
  PASS_REGULAR_EXPRESSION "QEMU ended without a status; it said:[\r\n]+qemu-system-x86_64: unable to find CPU model 'no-such-cpu-model'")
add_test(NAME boot.emulator_death_reported_bochs COMMAND ${NESTOR_RUN_EMULATOR} --timeout 60 --emulator bochs
         --iso ${iso} --cpu no_such_cpu_model --expect-status 0)
set_tests_properties(boot.emulator_death_reported_bochs PROPERTIES LABELS boot TIMEOUT 60
  PASS_REGULAR_EXPRESSION "Bochs is exiting with the following message: .*cpu directive malformed")

# `./nestor debug`'s stub: GDB attaches with the kernel's symbols, stops at the kernel's C++ entry
# and names it.
add_test(NAME boot.gdb_stub_answers COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/gdb-stub-check ${NESTOR_RUN_EMULATOR}
         ${elf32} ${NESTOR_KERNEL_main_DIR}/nestor.elf)
set_tests_properties(boot.gdb_stub_answers PROPERTIES LABELS boot TIMEOUT 60)
