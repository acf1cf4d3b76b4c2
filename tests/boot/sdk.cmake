# Guest SDK boot tests: guests built with sdk/guest, booted directly by QEMU's multiboot v1 loader
# (-kernel) without Nestor. QEMU's COM1 and isa-debug-exit stand in for the ones Nestor emulates
# per domain, so these prove the runtime on its own. The guests are built in the kernel sub-build.
get_filename_component(nestor_kernel_main_dir ${NESTOR_KERNEL_main_ELF32} DIRECTORY)
set(guests ${nestor_kernel_main_dir}/guests)

nestor_boot_test(sdk.hello_standalone sdk ARGS --kernel ${guests}/hello.elf32 --append "one two"
  --expect-status 0
  --expect "^hello from a Nestor guest$"
  --expect "^cmdline: \".*hello\\.elf32 one two\"$"
  --expect "^memory: [1-9][0-9]* ranges, [1-9][0-9]* KiB usable$")

set(sdk_selftest_checks
  --expect "^format: 12345 -42 0xbeef 0x001f true$"
  --expect "^probe ud2: vector 6 \\(#UD invalid opcode\\)$"
  --expect "^ok: ud2 raises #UD \\(vector 6\\)$"
  --expect "^probe non-canonical read: vector 13 error code 0x0$"
  --expect "^ok: non-canonical read raises #GP\\(0\\) \\(vector 13\\)$"
  --expect "^probe read above 4 GiB: vector 14 cr2 0x100000000$"
  --expect "^ok: probes nest$"
  --expect "^probe hypercall without a hypervisor: vector 6$"
  --expect "^ok: a hypercall without a hypervisor raises #UD$"
  --expect "^ok: rdtsc is monotonic$"
  --expect "^ok: paging and PAE are on$"
  --expect "^ok: multiboot v1 information$"
  --expect "^ok: the memory map holds the guest image at 1 MiB$"
  --expect "^checks: 14 passed, 0 failed$"
  --reject "^FAIL"
  --reject "unexpected exception")

nestor_boot_test(sdk.selftest_standalone sdk ARGS --kernel ${guests}/sdk_selftest.elf32 --append "alpha"
  --initrd "${PROJECT_SOURCE_DIR}/README.md readme"
  --expect-status 0
  ${sdk_selftest_checks}
  --expect "^cpuid: vendor AuthenticAMD, max leaf 0x[0-9a-f]+, hypercall vmmcall$"
  --expect "^boot: magic 0x2badb002 cmdline \".*sdk_selftest\\.elf32 alpha\"$"
  --expect "^module 0: \\[0x[0-9a-f]+, 0x[0-9a-f]+\\) .*README\\.md readme$")

# An Intel CPU model: the runtime must pick VMCALL.
nestor_boot_test(sdk.selftest_intel_standalone sdk ARGS --kernel ${guests}/sdk_selftest.elf32 --cpu Skylake-Client
  --expect-status 0
  ${sdk_selftest_checks}
  --expect "^cpuid: vendor GenuineIntel, max leaf 0x[0-9a-f]+, hypercall vmcall$")

nestor_boot_test(sdk.unexpected_exception_standalone sdk ARGS --kernel ${guests}/sdk_selftest.elf32 --append "crash"
  --expect-status 127
  --expect "^guest: unexpected exception 6 \\(#UD invalid opcode\\) error code 0x0 at rip 0x0000000000[0-9a-f]{6}$"
  --expect "^guest:   rax 0x[0-9a-f]{16} rbx 0x[0-9a-f]{16} rcx 0x[0-9a-f]{16} rdx 0x[0-9a-f]{16}$"
  --expect "^guest:   rflags 0x[0-9a-f]{8} cs 0x0008 ss 0x0010 cr0 0x[0-9a-f]{8} cr3 0x[0-9a-f]{8} cr4 0x[0-9a-f]{8}$")

nestor_boot_test(sdk.exit_status_standalone sdk ARGS --kernel ${guests}/sdk_selftest.elf32 --append "exit=42"
  --expect-status 42 --expect "^checks: 14 passed, 0 failed$")
