# Appliances: manifests packed by nestor-manifest, guests from the guest SDK, booted as
# multiboot modules (QEMU -kernel with -initrd, or a GRUB ISO).
set(appliance_guests ${NESTOR_KERNEL_main_GUESTS})

# nestor_appliance_test(CASE MANIFEST file GUESTS g... [KERNEL_DIR dir] [NESTED on|off] [ARGS ...]
# [SVM_ARGS ...] [VMX_ARGS ...] [AREA area] [TIMEOUT s] [VMX_TIMEOUT s]): boots the packed manifest
# and the guests (modules named after their targets) twice, from one test list: as svm.CASE under
# QEMU (AMD SVM) and as vmx.CASE under Bochs (Intel VMX), with SVM_ARGS / VMX_ARGS for what
# differs. KERNEL_DIR boots another kernel variant than the preset's (e.g. the other NESTED_VIRT
# build); NESTED packs the manifest as for that build. AREA names them AREA.svm_CASE and
# AREA.vmx_CASE instead, with label AREA.
function(nestor_appliance_test case)
  cmake_parse_arguments(ARG "" "MANIFEST;KERNEL_DIR;NESTED;AREA;TIMEOUT;VMX_TIMEOUT" "GUESTS;ARGS;SVM_ARGS;VMX_ARGS"
                        ${ARGN})
  set(svm_name svm.${case})
  set(vmx_name vmx.${case})
  set(svm_label svm)
  set(vmx_label vmx)
  if(ARG_AREA)
    set(svm_name ${ARG_AREA}.svm_${case})
    set(vmx_name ${ARG_AREA}.vmx_${case})
    set(svm_label ${ARG_AREA})
    set(vmx_label ${ARG_AREA})
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 60)
  endif()
  if(NOT ARG_VMX_TIMEOUT)
    set(ARG_VMX_TIMEOUT 180)
  endif()
  set(kernel_elf32 ${elf32})
  set(kernel_elf64 ${NESTOR_KERNEL_main_ELF})
  if(ARG_KERNEL_DIR)
    set(kernel_elf32 ${ARG_KERNEL_DIR}/nestor.elf32)
    set(kernel_elf64 ${ARG_KERNEL_DIR}/nestor.elf)
  endif()
  set(bin ${CMAKE_CURRENT_BINARY_DIR}/${case}.bin)
  if(ARG_NESTED)
    nestor_pack_manifest(OUTPUT ${bin} MANIFEST ${ARG_MANIFEST} NESTED ${ARG_NESTED})
  else()
    nestor_pack_manifest(OUTPUT ${bin} MANIFEST ${ARG_MANIFEST})
  endif()
  add_custom_target(pack_${case} ALL DEPENDS ${bin})
  set(initrd "${bin} manifest")
  foreach(guest IN LISTS ARG_GUESTS)
    string(APPEND initrd ",${appliance_guests}/${guest}.elf ${guest}")
  endforeach()
  nestor_boot_test(${svm_name} ${svm_label} TIMEOUT ${ARG_TIMEOUT} ARGS --kernel ${kernel_elf32} --initrd "${initrd}"
    ${ARG_ARGS} ${ARG_SVM_ARGS})
  nestor_boot_test(${vmx_name} ${vmx_label} TIMEOUT ${ARG_VMX_TIMEOUT} ARGS --emulator bochs --kernel-elf64 ${kernel_elf64}
    --initrd "${initrd}" ${ARG_ARGS} ${ARG_VMX_ARGS})
endfunction()

# The demo has a nested pair (appliances/guests/demo_l1.cpp), so it is packed and booted as for
# a NESTED_VIRT=ON kernel in every preset (tests/build builds one beside a preset's OFF kernel).
set(demo_checks
  --expect "^appliance: domain hello: 16 MiB, multiboot entry 0x[0-9a-f]+, no nested virtualization on (svm|vmx)$"
  --expect "^\\[hello\\] hello from a Nestor domain. waiting for a signal$"
  --expect "^\\[ping\\] ping: signal sent$"
  --expect "^\\[hello\\] signal received, badge 0x0002$"
  --expect "^appliance: domain nested exited with status 0 \\(exit port\\)"
  --expect "^appliance: 3 of 3 domains built, 0 failed or refused$"
  --reject "^error:")
# On AMD the L1 runs its L2, which prints its own line (through the console port L1 lets it use)
# and calls L1 with VMMCALL before halting.
set(demo_checks_svm
  --expect "^appliance: domain nested: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on svm$"
  --expect "^\\[nested\\] L1: a hypervisor inside a Nestor domain, starting its own guest \\(L2\\) with VMRUN$"
  --expect "^\\[nested\\] L2: hello from a guest of a guest: L1 started me with VMRUN, Nestor runs L1$"
  --expect "^\\[nested\\] L1: L2 called me with VMMCALL, rax 0x4c32 \\(\"L2\"\\)$"
  --expect "^\\[nested\\] L1: L2 halted. its guest life is over, so is mine$"
  --reject "^\\[nested\\] L1: this CPU offers VMX")
# On Intel the L1 sees VMX and does the same with VMLAUNCH and VMCALL.
set(demo_checks_vmx
  --expect "^appliance: domain nested: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on vmx$"
  --expect "^\\[nested\\] L1: a hypervisor inside a Nestor domain, starting its own guest \\(L2\\) with VMLAUNCH$"
  --expect "^\\[nested\\] L2: hello from a guest of a guest: L1 started me with VMLAUNCH, Nestor runs L1$"
  --expect "^\\[nested\\] L1: L2 called me with VMCALL$"
  --expect "^\\[nested\\] L1: L2 halted. its guest life is over, so is mine$"
  --reject "not implemented yet")
if(NESTOR_NESTED_MODE STREQUAL "ON")
  set(demo_kernel main)
else()
  set(demo_kernel nested_on)
  set(NESTOR_KERNEL_nested_on_DIR ${NESTOR_KERNEL_NESTED_ON_DIR})
  set(NESTOR_KERNEL_nested_on_GUESTS ${NESTOR_KERNEL_NESTED_ON_DIR}/guests)
endif()

nestor_appliance_test(appliance_demo MANIFEST ${PROJECT_SOURCE_DIR}/appliances/demo.manifest
  KERNEL_DIR ${NESTOR_KERNEL_${demo_kernel}_DIR} NESTED on
  GUESTS demo_hello demo_ping demo_l1 ARGS --expect-status 0 ${demo_checks}
  SVM_ARGS ${demo_checks_svm} VMX_ARGS ${demo_checks_vmx})

# A domain with nested virtualization that restarts on reset (vm_restart.hpp): each of its 16
# restarts releases its nested state and its vCPU and sets them up again; then it stops.
nestor_appliance_test(appliance_restart_nested MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/nested_restart.manifest
  KERNEL_DIR ${NESTOR_KERNEL_${demo_kernel}_DIR} NESTED on
  GUESTS hostile_triple_fault healthy ARGS --expect-status 1
  --expect "^appliance: domain l1: 8 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on (svm|vmx)$"
  --expect "^appliance: domain l1 triple fault: restarting \\(16\\)$"
  --expect "^error: appliance: domain l1 triple fault again after 16 restarts, the most a domain gets: it stops$"
  --expect "^error: appliance: domain l1 stopped: triple fault"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
  --expect "^appliance: 2 of 2 domains built, 1 failed or refused$"
  --reject "booting it again" --reject "nested virtualization failed" --reject "PANIC" --reject "CPU exception")

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
set(build_manifest_nested ${NESTOR_MANIFEST_NESTED})
set(NESTOR_MANIFEST_NESTED on)  # for this ISO's manifest only
nestor_appliance_iso(OUTPUT ${demo_iso} KERNEL ${demo_kernel} APPLIANCE demo)
set(NESTOR_MANIFEST_NESTED ${build_manifest_nested})
add_custom_target(demo_iso ALL DEPENDS ${demo_iso})
nestor_boot_test(svm.appliance_demo_from_grub_iso svm ARGS --iso ${demo_iso} --expect-status 0 ${demo_checks}
  ${demo_checks_svm})
# Under Bochs from a path relative to the build tree, as `./nestor run --emulator bochs` passes it
# (Bochs runs in a work directory of its own, so the harness must resolve it).
add_test(NAME vmx.appliance_demo_from_grub_iso
  COMMAND ${NESTOR_RUN_EMULATOR} --timeout 180 --log ${CMAKE_CURRENT_BINARY_DIR}/vmx.appliance_demo_from_grub_iso.log
          --emulator bochs --iso tests/boot/demo.iso --expect-status 0 ${demo_checks} ${demo_checks_vmx}
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

# A 32-bit kernel turns PAE paging on with one MOV to CR0 that also sets NE (as i386 Linux does):
# on VMX the backend emulates that MOV, and loads the PDPTEs from memory as the CPU would.
nestor_appliance_test(appliance_pae32_guest
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/pae32.manifest GUESTS pae32_multiboot healthy
  ARGS --expect-status 0
  --expect "^\\[pae32\\] pae32: started in protected mode$"
  --expect "^\\[pae32\\] pae32: PAE paging on$"
  --expect "^\\[pae32\\] pae32: read its data through the alias at 1 GiB$"
  --expect "^appliance: domain pae32 exited with status 0 \\(exit port\\)"
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

# vcpus > 1 is valid in a manifest, but the appliance starts more than one vCPU only for a PC
# domain (whose guest starts them with INIT-SIPI-SIPI): a bare domain asking for more is refused
# by name rather than run with fewer CPUs than it was promised.
nestor_appliance_test(appliance_more_vcpus_than_started_is_refused
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/appliances/two_vcpus.manifest GUESTS hello healthy
  ARGS --expect-status 1
  --expect "^error: appliance: domain smp refused: it asks for 2 vCPUs, more than this appliance starts \\(8 on the PC platform, 1 otherwise\\)$"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
  --expect "^appliance: 1 of 2 domains built, 1 failed or refused$"
  --reject "^\\[smp\\]")
