# Appliances: manifests packed by nestor-manifest, guests from the guest SDK, booted as
# multiboot modules (QEMU -kernel with -initrd, or a GRUB ISO).
set(appliance_guests ${NESTOR_KERNEL_main_GUESTS})

# nestor_appliance_test(CASE MANIFEST file GUESTS g... [KERNEL_DIR dir] [ARGS ...]): boots the
# packed manifest and the guests (modules named after their targets) twice, from one test list:
# as svm.CASE under QEMU (AMD SVM) and as vmx.CASE under Bochs (Intel VMX). KERNEL_DIR boots
# another kernel variant than the preset's (e.g. the other NESTED_VIRT build).
function(nestor_appliance_test case)
  cmake_parse_arguments(ARG "" "MANIFEST;KERNEL_DIR" "GUESTS;ARGS" ${ARGN})
  set(kernel_elf32 ${elf32})
  set(kernel_elf64 ${NESTOR_KERNEL_main_ELF})
  if(ARG_KERNEL_DIR)
    set(kernel_elf32 ${ARG_KERNEL_DIR}/nestor.elf32)
    set(kernel_elf64 ${ARG_KERNEL_DIR}/nestor.elf)
  endif()
  set(bin ${CMAKE_CURRENT_BINARY_DIR}/${case}.bin)
  nestor_pack_manifest(OUTPUT ${bin} MANIFEST ${ARG_MANIFEST})
  add_custom_target(pack_${case} ALL DEPENDS ${bin})
  set(initrd "${bin} manifest")
  foreach(guest IN LISTS ARG_GUESTS)
    string(APPEND initrd ",${appliance_guests}/${guest}.elf ${guest}")
  endforeach()
  nestor_boot_test(svm.${case} svm ARGS --kernel ${kernel_elf32} --initrd "${initrd}" ${ARG_ARGS})
  nestor_boot_test(vmx.${case} vmx TIMEOUT 180 ARGS --emulator bochs --kernel-elf64 ${kernel_elf64}
    --initrd "${initrd}" ${ARG_ARGS})
endfunction()

set(demo_checks
  --expect "^appliance: domain hello: 16 MiB, multiboot entry 0x[0-9a-f]+, no nested virtualization on (svm|vmx)$"
  --expect "^\\[hello\\] hello from a Nestor domain. waiting for a signal$"
  --expect "^\\[ping\\] ping: signal sent$"
  --expect "^\\[hello\\] signal received, badge 0x0002$"
  --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
  --reject "^error:")

nestor_appliance_test(appliance_demo MANIFEST ${PROJECT_SOURCE_DIR}/appliances/demo.manifest
  GUESTS demo_hello demo_ping ARGS --expect-status 0 ${demo_checks})

nestor_appliance_test(appliance_sdk_guests_as_domains
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/two_sdk_guests.manifest GUESTS hello sdk_selftest
  ARGS --expect-status 0
  --expect "^\\[hello\\] hello from a Nestor guest$"
  --expect "^\\[hello\\] cmdline: \"one two\"$"
  --expect "^\\[selftest\\] ok: ABI_VERSION hypercall$"
  --expect "^\\[selftest\\] checks: [1-9][0-9]* passed, 0 failed$"
  --reject "^\\[[a-z]+\\] \\.")  # no stray bytes from the UART's set-up

nestor_appliance_test(appliance_missing_image_is_reported
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/missing_image.manifest GUESTS hello
  ARGS --expect-status 1
  --expect "^error: appliance: domain ghost: no boot module named \"nonexistent\"$"
  --expect "^appliance: domain hello exited with status 0 \\(exit port\\)"
  --expect "^appliance: 1 of 2 domains built, 1 failed or refused$")

# A module called "manifest" that is no manifest: refused before anything is built.
nestor_boot_test(svm.appliance_corrupt_manifest_is_refused svm ARGS --kernel ${elf32}
  --initrd "${appliance_guests}/hello.elf manifest" --expect-status 1
  --expect "^error: appliance: the manifest is refused: bad_magic$")

# The demo as `./nestor run` boots it: from a GRUB ISO (multiboot2 module names).
set(demo_iso ${CMAKE_CURRENT_BINARY_DIR}/demo.iso)
nestor_appliance_iso(OUTPUT ${demo_iso} KERNEL main APPLIANCE demo)
add_custom_target(demo_iso ALL DEPENDS ${demo_iso})
nestor_boot_test(svm.appliance_demo_from_grub_iso svm ARGS --iso ${demo_iso} --expect-status 0 ${demo_checks})
# Under Bochs from a path relative to the build tree, as `./nestor run --emulator bochs` passes it
# (Bochs runs in a work directory of its own, so the harness must resolve it).
add_test(NAME vmx.appliance_demo_from_grub_iso
  COMMAND ${NESTOR_RUN_EMULATOR} --timeout 180 --log ${CMAKE_CURRENT_BINARY_DIR}/vmx.appliance_demo_from_grub_iso.log
          --emulator bochs --iso tests/boot/demo.iso --expect-status 0 ${demo_checks}
  WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(vmx.appliance_demo_from_grub_iso PROPERTIES LABELS vmx TIMEOUT 180)

# Guest images of both kinds: a plain ELF64 kernel starts in long mode, beside a multiboot one.
nestor_appliance_test(appliance_plain_elf64_guest
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/elf64_plain.manifest GUESTS elf64_plain healthy
  ARGS --expect-status 0
  --expect "^appliance: domain plain: 4 MiB, 64-bit ELF entry 0x[0-9a-f]+, no nested virtualization on (svm|vmx)$"
  --expect "^appliance: domain healthy: 4 MiB, multiboot entry 0x[0-9a-f]+, no nested virtualization on (svm|vmx)$"
  --expect "^\\[plain\\] plain ELF64: started in long mode$"
  --expect "^\\[plain\\] plain ELF64: checked EFER.LMA, CR0.PG, RSP and RDI$"
  --expect "^appliance: domain plain exited with status 0 \\(exit port\\)"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)")

# Halting with interrupts enabled waits for a signal: the demo's "hello" is woken by "ping"
# (appliance_demo). A domain whose signal can never come is stopped once every other domain
# has finished, so the machine does not idle for ever.
nestor_appliance_test(appliance_waiting_domain_nothing_can_wake
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/waiter_alone.manifest GUESTS waiter healthy
  ARGS --expect-status 1
  --expect "^\\[waiter\\] waiter: waiting for a signal$"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
  --expect "^error: appliance: domain waiter stopped: waits for a signal nothing can send after [0-9]+ exits"
  --reject "woke with badge")

# Signals as interrupts (NOTIFICATION_SET_VECTOR): the listener sleeps in HLT and is woken by an
# injected interrupt at the vector it chose; with interrupts disabled the signal waits (through
# 200 exits) and arrives at the first exit after STI; a poll in the handler re-arms it.
nestor_appliance_test(appliance_signals_as_interrupts
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/signal_interrupts.manifest GUESTS interrupt_listener interrupt_sender
  ARGS --expect-status 0
  --expect "^\\[listener\\] set vector 0x40: status 0$"
  --expect "^\\[listener\\] set vector 0x10: status 2$"
  --expect "^\\[listener\\] set vector 0x100: status 2$"
  --expect "^\\[listener\\] round 1: woken by interrupt 0x40, badges 0x0002$"
  --expect "^\\[listener\\] round 2: 0 interrupts while disabled$"
  --expect "^\\[listener\\] round 2: 1 interrupt once enabled$"
  --expect "^\\[listener\\] round 3: interrupts 3, badges 0x0002$"
  --expect "^\\[sender\\] round 3: signalled$"
  --expect "^appliance: domain listener exited with status 0 \\(exit port\\)"
  --expect "^appliance: domain sender exited with status 0 \\(exit port\\)"
  --reject "unexpected (interrupt|exception)"
  --reject "^error:")
