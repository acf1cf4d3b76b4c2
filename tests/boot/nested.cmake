# Nested-virtualization boot tests with the built-in guests (label "nested"): the banner states
# the predicate, and a guest without nested virtualization sees no SVM and gets #UD for VMRUN and
# #GP for VM_CR in both images. tests/build builds the kernel with the other NESTED_VIRT value.
set(nested_on_elf32 ${NESTOR_KERNEL_NESTED_ON_DIR}/nestor.elf32)
set(nested_off_elf32 ${NESTOR_KERNEL_NESTED_OFF_DIR}/nestor.elf32)

nestor_boot_test(nested.banner_off nested ARGS --kernel ${nested_off_elf32} --expect-status 0
  --expect "^build: NESTED_VIRT=OFF "
  --expect "^nested: unavailable \\(built without NESTED_VIRT\\)$"
  --reject "^nested: available")

# QEMU's EPYC model has SVM and NPT: the real component can offer nested SVM.
nestor_boot_test(nested.banner_on nested ARGS --kernel ${nested_on_elf32} --expect-status 0
  --expect "^build: NESTED_VIRT=ON "
  --expect "^nested: available$")

set(no_nested_smoke_checks
  --expect-status 0
  --expect "^\\[smoke\\] cpuid 1: hypervisor=1 vmx=0$"
  --expect "^\\[smoke\\] cpuid 80000001: svm=0$"
  --expect "^\\[smoke\\] rdmsr c0010114: #GP$"
  --expect "^\\[smoke\\] vmrun \\(real mode\\): #UD$"
  --expect "^\\[smoke\\] vmrun, clgi \\(protected mode\\): #UD$"
  --expect "^\\[smoke\\] smoke: done, failures 0x00000000$"
  --reject "^error:"
  --reject "not implemented yet")

nestor_boot_test(nested.off_smoke_guest_sees_no_svm nested ARGS --kernel ${nested_off_elf32}
  --append "nestor.builtin-guest=smoke" ${no_nested_smoke_checks})
# Built-in guests have no domain, so no nested virtualization even when the image has the component.
nestor_boot_test(nested.on_smoke_guest_without_nested_sees_no_svm nested ARGS --kernel ${nested_on_elf32}
  --append "nestor.builtin-guest=smoke" ${no_nested_smoke_checks})

# Bochs' Skylake model has VMX, EPT and unrestricted guest: nested VMX is available.
nestor_boot_test(nested.banner_on_intel nested TIMEOUT 120 ARGS --emulator bochs
  --kernel-elf64 ${NESTOR_KERNEL_NESTED_ON_DIR}/nestor.elf --expect-status 0
  --expect "^cpu: Intel \\(GenuineIntel\\)"
  --expect "^nested: available$")

# Domains from a manifest: one allowed to nest beside one that is not. The manifest is packed
# as for a NESTED_VIRT=ON build in both runs, so the OFF kernel itself must refuse the domain.
set(l1_manifest ${CMAKE_CURRENT_BINARY_DIR}/l1_beside_plain.bin)
nestor_pack_manifest(OUTPUT ${l1_manifest} MANIFEST ${PROJECT_SOURCE_DIR}/tests/nested/appliances/l1_beside_plain.manifest
                     NESTED on)
add_custom_target(pack_l1_beside_plain ALL DEPENDS ${l1_manifest})
set(l1_modules "${l1_manifest} manifest,${NESTOR_KERNEL_main_GUESTS}/nested_probe.elf nested_probe")

set(plain_domain_checks
  --expect "^\\[plain\\] cpuid svm=0 vmx=0$"
  --expect "^\\[plain\\] cpuid 8000000a: eax=0x0 np=0 nrips=0$"
  --expect "^\\[plain\\] vm_cr: #GP general protection$"
  --expect "^\\[plain\\] hsave_pa <- 0x200000: #GP general protection$"
  --expect "^\\[plain\\] vmrun before svme: #UD invalid opcode$"
  --expect "^appliance: domain plain exited with status 0 \\(exit port\\)")

# NESTED_VIRT=ON on an AMD CPU with NPT: the flag is accepted, CPUID shows SVM to that domain
# only, physcaps has the bit for everyone, the SVM MSRs behave, VMRUN needs EFER.SVME; with it, a
# VMCB failing the checks returns VMEXIT_INVALID (-1) and a bad VMCB address gets #GP (APM).
nestor_boot_test(nested.manifest_domain_on nested ARGS --kernel ${nested_on_elf32} --initrd "${l1_modules}"
  --expect-status 0
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on svm$"
  --expect "^\\[l1\\] physcaps nested_virt=1$"
  --expect "^\\[plain\\] physcaps nested_virt=1$"
  --expect "^\\[l1\\] cpuid svm=1 vmx=0$"
  --expect "^\\[l1\\] cpuid 8000000a: eax=0x1 np=1 nrips=1$"
  --expect "^\\[l1\\] vm_cr: 0x0$"
  --expect "^\\[l1\\] hsave_pa <- 0x200000: ok$"
  --expect "^\\[l1\\] hsave_pa <- 0x200010: #GP general protection$"
  --expect "^\\[l1\\] vmrun before svme: #UD invalid opcode$"
  --expect "^\\[l1\\] efer <- 0x[0-9a-f]*1[0-9a-f]{3}: ok$"
  --expect "^\\[l1\\] vmrun with svme: returned, exit code -1$"
  --expect "^\\[l1\\] vmrun unaligned: #GP general protection$"
  --expect "^\\[l1\\] vmrun beyond memory: #GP general protection$"
  --expect "^appliance: domain l1 exited with status 0 \\(exit port\\)"
  --reject "not implemented yet"
  ${plain_domain_checks})

# An L1 hypervisor written with the SDK runs an L2 (a few instructions in its memory) beside a
# healthy domain: VMRUN of a VMCB with ASID 0 returns VMEXIT_INVALID, an unaligned VMCB address
# #GPs, then L2's CPUID, OUT and HLT each come back to L1 as a #VMEXIT with NRIP and EXITINFO1.
set(l1_runs_l2_manifest ${CMAKE_CURRENT_BINARY_DIR}/l1_runs_l2.bin)
nestor_pack_manifest(OUTPUT ${l1_runs_l2_manifest} MANIFEST ${PROJECT_SOURCE_DIR}/tests/nested/appliances/l1_runs_l2.manifest
                     NESTED on)
add_custom_target(pack_l1_runs_l2 ALL DEPENDS ${l1_runs_l2_manifest})
nestor_boot_test(nested.l1_runs_l2 nested ARGS --kernel ${nested_on_elf32}
  --initrd "${l1_runs_l2_manifest} manifest,${NESTOR_KERNEL_main_GUESTS}/l1_hypervisor.elf l1_hypervisor,${NESTOR_KERNEL_main_GUESTS}/healthy.elf healthy"
  --expect-status 0
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on svm$"
  --expect "^\\[l1\\] vmrun with asid 0: exit code -1$"
  --expect "^\\[l1\\] vmrun unaligned: #GP general protection$"
  --expect "^\\[l1\\] L2 exit 0x72: cpuid, next_rip - rip = 2$"
  --expect "^\\[l1\\] L2 exit 0x7b: io port 0x80 size 1 out al 0x2a$"
  --expect "^\\[l1\\] L2 exit 0x78: hlt$"
  --expect "^\\[l1\\] L2 done$"
  --expect "^appliance: domain l1 exited with status 0 \\(exit port\\)"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
  --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
  --reject "^error:")

# NESTED_VIRT=OFF: the domain asking for nested virtualization is refused by name, the other runs
# and physcaps has no nested bit.
nestor_boot_test(nested.manifest_domain_off_refused nested ARGS --kernel ${nested_off_elf32} --initrd "${l1_modules}"
  --expect-status 1
  --expect "^error: appliance: domain l1 refused: it asks for nested virtualization, which this build on this CPU cannot offer \\(built without NESTED_VIRT\\)$"
  --expect "^\\[plain\\] physcaps nested_virt=0$"
  --expect "^appliance: 1 of 2 domains built, 1 failed or refused$"
  ${plain_domain_checks}
  --reject "^\\[l1\\]")

# The same on Intel VMX under Bochs: the nested domain sees VMX in CPUID and IA32_FEATURE_CONTROL
# locked with VMX allowed, may set CR4.VMXE, and VMXON is refused loudly until nested VMX exists;
# the other domain sees none of it and gets #GP for CR4.VMXE.
set(plain_domain_checks_intel
  --expect "^\\[plain\\] cpuid svm=0 vmx=0$"
  --expect "^\\[plain\\] vm_cr: #GP general protection$"
  --expect "^\\[plain\\] vmrun before svme: #UD invalid opcode$"
  --expect "^\\[plain\\] feature_control: 0x1$"
  --expect "^\\[plain\\] cr4.vmxe: #GP general protection$"
  --expect "^appliance: domain plain exited with status 0 \\(exit port\\)")
nestor_boot_test(nested.manifest_domain_on_vmx nested TIMEOUT 180 ARGS --emulator bochs
  --kernel-elf64 ${NESTOR_KERNEL_NESTED_ON_DIR}/nestor.elf --initrd "${l1_modules}" --expect-status 1
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on vmx$"
  --expect "^\\[l1\\] physcaps nested_virt=1$"
  --expect "^\\[l1\\] cpuid svm=0 vmx=1$"
  --expect "^\\[l1\\] feature_control: 0x5$"
  --expect "^\\[l1\\] cr4.vmxe: ok$"
  --expect "^error: appliance: domain l1: nested VMX: VMXON is not implemented yet$"
  --expect "^\\[plain\\] physcaps nested_virt=1$"
  ${plain_domain_checks_intel})
nestor_boot_test(nested.manifest_domain_off_refused_vmx nested TIMEOUT 180 ARGS --emulator bochs
  --kernel-elf64 ${NESTOR_KERNEL_NESTED_OFF_DIR}/nestor.elf --initrd "${l1_modules}" --expect-status 1
  --expect "^error: appliance: domain l1 refused: it asks for nested virtualization, which this build on this CPU cannot offer \\(built without NESTED_VIRT\\)$"
  --expect "^\\[plain\\] physcaps nested_virt=0$"
  ${plain_domain_checks_intel}
  --reject "^\\[l1\\]")
