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

if(BUILTIN_GUESTS)
  nestor_boot_test(nested.off_smoke_guest_sees_no_svm nested ARGS --kernel ${nested_off_elf32}
    --append "nestor.builtin-guest=smoke" ${no_nested_smoke_checks})
  # Built-in guests have no domain, so no nested virtualization even when the image has the component.
  nestor_boot_test(nested.on_smoke_guest_without_nested_sees_no_svm nested ARGS --kernel ${nested_on_elf32}
    --append "nestor.builtin-guest=smoke" ${no_nested_smoke_checks})
endif()

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

# nestor_l1_boot_test(NAME MANIFEST GUEST ARGS ...): an L1 hypervisor (tests/nested/guests/GUEST)
# of tests/nested/appliances/MANIFEST.manifest, domain "l1", beside the domain "healthy": both
# must finish with status 0, and ARGS adds what the L1 must print.
function(nestor_l1_boot_test name manifest guest)
  cmake_parse_arguments(ARG "" "" "ARGS" ${ARGN})
  nestor_nested_test(${name} MANIFEST ${PROJECT_SOURCE_DIR}/tests/nested/appliances/${manifest}.manifest
    GUESTS ${guest} healthy ARGS
    --expect-status 0
    --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on svm$"
    ${ARG_ARGS}
    --expect "^appliance: domain l1 exited with status 0 \\(exit port\\)"
    --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
    --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
    --reject "^error:"
    --reject "^\\[l1\\] (expected|guest: unexpected)")
endfunction()

# An L1 hypervisor written with the SDK runs an L2 (a few instructions in its memory): VMRUN of a
# VMCB with ASID 0 returns VMEXIT_INVALID, an unaligned VMCB address #GPs, then L2's CPUID, OUT
# and HLT each come back to L1 as a #VMEXIT with NRIP and EXITINFO1.
nestor_l1_boot_test(nested.l1_runs_l2 l1_runs_l2 l1_hypervisor ARGS
  --expect "^\\[l1\\] vmrun with asid 0: exit code -1$"
  --expect "^\\[l1\\] vmrun unaligned: #GP general protection$"
  --expect "^\\[l1\\] L2 exit 0x72: cpuid, next_rip - rip = 2$"
  --expect "^\\[l1\\] L2 exit 0x7b: io port 0x80 size 1 out al 0x2a$"
  --expect "^\\[l1\\] L2 exit 0x78: hlt$"
  --expect "^\\[l1\\] L2 done$")

# L1's MSR permission map: RDMSR / WRMSR of an MSR it intercepts, in each of the map's three
# ranges and outside them, is exit 0x7C with EXITINFO1 0 / 1, L2's ECX and NRIP; L1's emulated
# value reaches L2.
nestor_l1_boot_test(nested.l1_msr_intercepts l1_msr_intercepts l1_msr ARGS
  --expect "^\\[l1\\] L2 exit 0x7c exitinfo1 0: rdmsr ecx 0x1b, next_rip - rip = 2$"
  --expect "^\\[l1\\] L2 exit 0x7c exitinfo1 1: wrmsr ecx 0xc0000081 value 0x5566778811223344, next_rip - rip = 2$"
  --expect "^\\[l1\\] L2 exit 0x7c exitinfo1 0: rdmsr ecx 0xc0010010, next_rip - rip = 2$"
  --expect "^\\[l1\\] L2 exit 0x7c exitinfo1 1: wrmsr ecx 0xc0010010 value 0x9abcdef0, next_rip - rip = 2$"
  --expect "^\\[l1\\] L2 exit 0x7c exitinfo1 0: rdmsr ecx 0x40000000, next_rip - rip = 2$"
  --expect "^\\[l1\\] L2 read 0xfeed00000000001b from msr 0x1b: L1's value$"
  --expect "^\\[l1\\] L2 done$")

# L1's exception intercepts: each fault of L2 is exit 0x40 + vector at the faulting instruction,
# with the error code (and #PF's address) in EXITINFO1 (and 2), including the #UD of a VMMCALL L1
# does not intercept. QEMU's TCG never checks INT3 against the #BP intercept, so #BP is not among
# them.
nestor_l1_boot_test(nested.l1_exception_intercepts l1_exception_intercepts l1_exceptions ARGS
  --expect "^\\[l1\\] L2 exit 0x46: ud2, rip at the instruction yes$"
  --expect "^\\[l1\\] L2 exit 0x47: fninit with cr0.ts, rip at the instruction yes$"
  --expect "^\\[l1\\] L2 exit 0x40: div by zero, rip at the instruction yes$"
  --expect "^\\[l1\\] L2 exit 0x4d: mov 0x1230 to fs, rip at the instruction yes, exitinfo1 0x1230$"
  --expect "^\\[l1\\] L2 exit 0x4e: write to 4 GiB \\+ 0x123, rip at the instruction yes, exitinfo1 0x2, exitinfo2 0x100000123$"
  --expect "^\\[l1\\] L2 exit 0x4d: rdmsr 0x1b, which L0 refuses, rip at the instruction yes, exitinfo1 0x0$"
  --expect "^\\[l1\\] L2 exit 0x46: vmmcall without its intercept, rip at the instruction yes$"
  --expect "^\\[l1\\] L2 done$")

# What L1 does not intercept is judged by L1's permissions: L2's COM1 output is L1's console, its
# MSR reads get what L1's get (a value, #GP), a port the kernel owns stays without effect, a port
# granted to L1 (CMOS RAM) reaches the hardware for L2 too; the accesses L1 does intercept exit.
# L2's EFER is L2's: it clears its EFER.SVME and reads it back clear, L1's stays set and its next
# VMRUN runs L2 (an L2 reaching L1's EFER.SVME would make it #UD).
nestor_l1_boot_test(nested.l1_passthrough l1_passthrough l1_passthrough ARGS
  --expect "^\\[l1\\] L1: rdmsr 0x8b: 0x0$"
  --expect "^\\[l1\\] L1: rdmsr 0x1b: #GP general protection$"
  --expect "^\\[l1\\] L1: port 0x21 after writing 0x5a: 0xff$"
  --expect "^\\[l1\\] L2: this line goes through port 0x3f8, which L1 does not intercept$"
  --expect "^\\[l1\\] L2: rdmsr 0x8b: 0x0$"
  --expect "^\\[l1\\] L2: rdmsr 0x1b: #GP general protection$"
  --expect "^\\[l1\\] L2: port 0x21 after writing 0x5a: 0xff$"
  --expect "^\\[l1\\] L2: cmos\\[0x40\\] 0xa5, writing 0x5c$"
  --expect "^\\[l1\\] L2: efer.svme 1, after clearing it 0$"
  --expect "^\\[l1\\] L1: L2 exit 0x7c exitinfo1 1: the intercepted wrmsr 0x8b$"
  --expect "^\\[l1\\] L1: L2 exit 0x7b: the intercepted port 0x80$"
  --expect "^\\[l1\\] L1: cmos\\[0x40\\] after L2 0x5c$"
  --expect "^\\[l1\\] L1: efer.svme after L2 cleared its own: 1$"
  --expect "^\\[l1\\] L1: vmrun again: L2 exit 0x81$"
  --expect "^\\[l1\\] L2 done$")

# L1's NMIs (a PC domain's self-NMIs): held while L1's GIF is clear, taken after STGI; L2's, with
# L1 intercepting NMI, a #VMEXIT(NMI), the NMI L1's once it sets GIF again.
nestor_l1_boot_test(nested.l1_nmi l1_nmi l1_nmi ARGS
  --expect "^\\[l1\\] self-NMI with GIF clear: nothing$"
  --expect "^\\[l1\\] after STGI: NMI$"
  --expect "^\\[l1\\] L2's self-NMI: exit 0x61, then in L1 after STGI: NMI$"
  --expect "^\\[l1\\] L2 done$")

# An interrupt of an L1's (a PC domain's self-IPI, pending while GIF is clear) and an event L1
# injects into its L2 with INTR intercepted: the event goes first, and the #VMEXIT(INTR) comes
# right after its delivery (L0's one-tick timer), not at L2's next exit of its own; after STGI the
# interrupt is L1's. Under -icount, so that time is instructions: a slice is then the same length
# on every machine, and the one-tick timer as short.
nestor_l1_boot_test(nested.l1_interrupt_after_event l1_interrupt_after_event l1_interrupt_after_event ARGS
  --icount
  --expect "^\\[l1\\] L1's interrupt after the injected event: exit 0x60, in L2's handler after under 100 steps: yes \\([0-9]+\\)$"
  --expect "^\\[l1\\] before stgi: 0 interrupts$"
  --expect "^\\[l1\\] after stgi: 1 interrupts$"
  --expect "^\\[l1\\] L2 done$")

# An L1 in a PC domain that neither intercepts INTR nor masks with its own IF: its interrupt,
# pending while its L2 runs with interrupts off, reaches L2's handler as soon as L2 sets IF (L0's
# interrupt window in vmcb02), before L2's VMMCALL two instructions later.
nestor_l1_boot_test(nested.l2_takes_l1_interrupt l2_takes_l1_interrupt l2_takes_l1_interrupt ARGS
  --icount
  --expect "^\\[l1\\] L2's exit 0x81, L1's interrupt taken by L2 before its VMMCALL: yes, in all: 1$"
  --expect "^\\[l1\\] L2 done$")

# An INIT to an L1's application processor (a PC domain with two vCPUs): while its L2 runs and L1
# intercepts INIT, a #VMEXIT(INIT) that leaves it pending, held by the clear GIF (the AP runs on)
# until its STGI, after which the AP waits for the startup IPI that starts it again.
nestor_l1_boot_test(nested.l1_init_signal l1_init_signal l1_init_signal ARGS
  --expect "^\\[l1\\] the AP's L2 took an INIT as #VMEXIT 0x63$"
  --expect "^\\[l1\\] the INIT waited while GIF was clear: the AP ran on: yes$"
  --expect "^appliance: domain l1: vCPU 1 waits for a startup IPI again \\(INIT\\)$"
  --expect "^\\[l1\\] STGI let the INIT in: the instruction after it did not run: yes$"
  --expect "^\\[l1\\] the startup IPI sent while the INIT waited was ignored: yes$"
  --expect "^\\[l1\\] the startup IPI started the AP again: yes$"
  --expect "^\\[l1\\] done$")

# EVENTINJ: an interrupt, an NMI and an exception with its error code run L2's own handlers
# before L2's first instruction; a reserved type or a vector that is no exception: VMEXIT_INVALID.
nestor_l1_boot_test(nested.l1_event_injection l1_event_injection l1_events ARGS
  --expect "^\\[l1\\] no event: L2 ran its entry, rax 0xe0$"
  --expect "^\\[l1\\] inject interrupt 0x30: L2 handler of vector 0x30 ran, error code 0x0, before L2's first instruction yes$"
  --expect "^\\[l1\\] inject nmi: L2 handler of vector 0x2 ran, error code 0x0, before L2's first instruction yes$"
  --expect "^\\[l1\\] inject #GP error code 0x1234: L2 handler of vector 0xd ran, error code 0x1234, before L2's first instruction yes$"
  --expect "^\\[l1\\] eventinj type 1 \\(reserved\\): exit code -1$"
  --expect "^\\[l1\\] eventinj exception vector 0x30: exit code -1$"
  --expect "^\\[l1\\] eventinj exception vector 2 \\(nmi\\): exit code -1$"
  --expect "^\\[l1\\] L2 done$")

# VMLOAD / VMSAVE / STGI / CLGI: #UD before EFER.SVME; then VMSAVE stores L1's segment state and
# nothing else, VMLOAD's values reach the CPU (segment bases, SWAPGS, STR/SLDT, SYSCALL through
# LSTAR/STAR/SFMASK) and come back by VMSAVE; a bad address #GPs.
nestor_l1_boot_test(nested.l1_vmload_vmsave l1_vmload_vmsave l1_vmload ARGS
  --expect "^\\[l1\\] before svme: vmload #UD invalid opcode, vmsave #UD invalid opcode, stgi #UD invalid opcode, clgi #UD invalid opcode$"
  --expect "^\\[l1\\] with svme: clgi, stgi ok$"
  --expect "^\\[l1\\] vmsave: fs 0x[0-9a-f]+ gs 0x[0-9a-f]+ tr 0x[0-9a-f]+ ldtr 0x[0-9a-f]+, as the cpu has them: yes$"
  --expect "^\\[l1\\] vmsave: fields outside the vmload state untouched: yes$"
  --expect "^\\[l1\\] vmload: fs:0 0xf5f5f5f5 gs:0 0x65656565 after swapgs 0x6b6b6b6b, the new bases: yes$"
  --expect "^\\[l1\\] vmload: str 0x28 sldt 0x30$"
  --expect "^\\[l1\\] vmload: syscall reached lstar with cs 0x8, rflags.df masked by sfmask: yes$"
  --expect "^\\[l1\\] vmsave after vmload: every field as loaded: yes$"
  --expect "^\\[l1\\] vmload unaligned: #GP general protection$"
  --expect "^\\[l1\\] vmsave unaligned: #GP general protection$"
  --expect "^\\[l1\\] vmload outside memory: #GP general protection$"
  --expect "^\\[l1\\] vmsave outside memory: #GP general protection$")

# Every consistency check of VMRUN (CheckFailure in components/nested/svm/vmrun_check.hpp) failing
# alone gives VMEXIT_INVALID and writes only the exit fields; the good VMCB still runs L2 after.
# nested_paging_not_offered cannot happen: Nestor offers nested paging.
set(vmrun_check_names vmrun_not_intercepted asid_zero efer_svme_clear cr0_nw_without_cd cr0_high_bits cr3_mbz
  cr4_mbz dr6_high_bits dr7_high_bits efer_mbz long_mode_without_pae long_mode_without_pe long_mode_cs_l_and_d
  event_inject_type event_inject_vector msrpm_outside_l1_ram iopm_outside_l1_ram nested_cr3_mbz
  nested_cr3_outside_l1_ram gpat_invalid)
set(vmrun_check_expects)
foreach(check IN LISTS vmrun_check_names)
  list(APPEND vmrun_check_expects --expect "^\\[l1\\] check ${check}: exit code -1$")
endforeach()
nestor_l1_boot_test(nested.l1_vmrun_checks l1_vmrun_checks l1_checks ARGS
  ${vmrun_check_expects}
  --expect "^\\[l1\\] good vmcb after 20 checks: exit 0x81, L2 ran$")

# L0's timer while L2 runs: with short slices L2's loop spans many preemptions of the domain
# (checked below: at least 5; usually about a hundred, but QEMU on a host busy with other
# emulators delivers its timer late and took as few as 10), yet L1's VMRUN ends only with L2's
# VMMCALL, every register as L2 left it. The watchdog is raised so that a slower emulator cannot
# make it trip.
nestor_l1_boot_test(nested.l1_l0_timer l1_l0_timer l1_l0_timer ARGS
  --append "nestor.time-slice=1000000 nestor.watchdog=5000"
  --expect "^\\[l1\\] L2 exit 0x81: vmmcall after its loop, rip at the vmmcall yes$"
  --expect "^\\[l1\\] L2 looped 5000000 times of 5000000, its tsc readings within L1's vmrun: yes$"
  --expect "^\\[l1\\] L2's registers intact: yes$"
  --expect "^appliance: domain l1 was preempted ([5-9]|[1-9][0-9]+) times$"
  --expect "^\\[l1\\] L2 done$"
  --reject "without an exit \\(watchdog\\)")

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
# locked with VMX allowed, may set CR4.VMXE, and its VMXON of a region without the revision
# identifier returns (VMfailInvalid); the other domain sees none of it and gets #GP for CR4.VMXE.
set(plain_domain_checks_intel
  --expect "^\\[plain\\] cpuid svm=0 vmx=0$"
  --expect "^\\[plain\\] vm_cr: #GP general protection$"
  --expect "^\\[plain\\] vmrun before svme: #UD invalid opcode$"
  --expect "^\\[plain\\] feature_control: 0x1$"
  --expect "^\\[plain\\] cr4.vmxe: #GP general protection$"
  --expect "^appliance: domain plain exited with status 0 \\(exit port\\)")
nestor_boot_test(nested.manifest_domain_on_vmx nested TIMEOUT 180 ARGS --emulator bochs
  --kernel-elf64 ${NESTOR_KERNEL_NESTED_ON_DIR}/nestor.elf --initrd "${l1_modules}" --expect-status 0
  --expect "^appliance: domain l1: 16 MiB, multiboot entry 0x[0-9a-f]+, nested virtualization on vmx$"
  --expect "^\\[l1\\] physcaps nested_virt=1$"
  --expect "^\\[l1\\] cpuid svm=0 vmx=1$"
  --expect "^\\[l1\\] feature_control: 0x5$"
  --expect "^\\[l1\\] cr4.vmxe: ok$"
  --expect "^\\[l1\\] vmxon: returned$"
  --expect "^appliance: domain l1 exited with status 0 \\(exit port\\)"
  --expect "^\\[plain\\] physcaps nested_virt=1$"
  ${plain_domain_checks_intel})
nestor_boot_test(nested.manifest_domain_off_refused_vmx nested TIMEOUT 180 ARGS --emulator bochs
  --kernel-elf64 ${NESTOR_KERNEL_NESTED_OFF_DIR}/nestor.elf --initrd "${l1_modules}" --expect-status 1
  --expect "^error: appliance: domain l1 refused: it asks for nested virtualization, which this build on this CPU cannot offer \\(built without NESTED_VIRT\\)$"
  --expect "^\\[plain\\] physcaps nested_virt=0$"
  ${plain_domain_checks_intel}
  --reject "^\\[l1\\]")
