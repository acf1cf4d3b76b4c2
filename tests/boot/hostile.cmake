# Hostile guests, each beside a healthy domain that must keep running and finish. The guests are
# in tests/guests (hostile_*.cpp, healthy.cpp), the manifests in tests/appliances/hostile_*.manifest.
# Every case runs as svm.hostile_* (QEMU, AMD SVM) and vmx.hostile_* (Bochs, Intel VMX) with the
# same expectations: the hostile guest's own report lines, the kernel's report about it, the
# healthy domain's exit and the appliance's summary and status.
set(hostile_manifests ${PROJECT_SOURCE_DIR}/tests/appliances)

# hostile_expect(VAR "literal line"): appends --expect matching exactly that whole line.
function(hostile_expect out line)
  set(s "${line}")
  foreach(c IN ITEMS "\\" "." "*" "+" "?" "^" "$" "|" "(" ")" "{" "}" "[" "]")
    string(REPLACE "${c}" "\\${c}" s "${s}")
  endforeach()
  set(${out} ${${out}} --expect "^${s}$" PARENT_SCOPE)
endfunction()

# hostile_console(VAR domain "line"...): the domain's console lines, exactly.
function(hostile_console out domain)
  set(args ${${out}})
  foreach(line IN LISTS ARGN)
    hostile_expect(args "[${domain}] ${line}")
  endforeach()
  set(${out} ${args} PARENT_SCOPE)
endfunction()

# The kernel's report on a domain stopped for cause; the exit count, exit code and RIP vary.
function(hostile_stopped out domain reason last_exit)
  set(${out} ${${out}} --expect
    "^error: appliance: domain ${domain} stopped: ${reason} after [0-9]+ exits \\(last exit ${last_exit} code 0x[0-9a-f]+ at rip 0x[0-9a-f]+\\)$"
    PARENT_SCOPE)
endfunction()

# What every case checks: the healthy domain ran to its end, and the kernel neither panicked nor
# took a CPU exception.
set(hostile_common)
hostile_console(hostile_common healthy
  "healthy: started"
  "healthy: abi_version status 0"
  "healthy: physcaps status 0"
  "healthy: console_write through a hypercall"
  "healthy: console_write status 0"
  "healthy: yielded 5 times, 0 refused"
  "healthy: done")
list(APPEND hostile_common
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --reject "PANIC" --reject "CPU exception")

# 1. Wild memory accesses: guest-physical addresses outside its memory (the SDK identity-maps
#    4 GiB, so each access reaches the nested page tables). Each domain is stopped with the report;
#    nothing after the access runs.
set(checks ${hostile_common})
foreach(d "wildread;read;0x40000000" "wildwrite;write;0x1000000" "wildexec;exec;0xfee00000")
  list(GET d 0 name)
  list(GET d 1 access)
  list(GET d 2 address)
  set(report ${access})
  if(access STREQUAL "exec")
    set(report execute)
  endif()
  hostile_console(checks ${name} "wild: ${access} of guest-physical ${address}")
  hostile_stopped(checks ${name} "bad memory access" nested_page_fault)
  hostile_expect(checks "error: appliance: domain ${name}: ${report} of guest-physical ${address}, outside its memory")
endforeach()
nestor_appliance_test(hostile_wild_memory MANIFEST ${hostile_manifests}/hostile_wild_memory.manifest
  GUESTS hostile_wild healthy ARGS --expect-status 1 ${checks}
  --expect "^error: appliance: domain wildexec stopped: .* at rip 0xfee00000\\)$"
  --expect "^appliance: 4 of 4 domains built, 3 failed or refused$"
  --reject "^\\[wild[a-z]+\\] wild: (read 0x|the |still running)")

# 2. Its own page tables edited to reach outside: an alias of 0x100000 (the host kernel's load
#    address) reads this guest's own image, one of 0xb8000 (the host's VGA buffer) its own RAM;
#    aliases of 0xfee00000 (the host's local APIC) and 0x100000000 stop the domain with the
#    guest-physical address named; so does CR3 pointed outside its memory. The access kind of the
#    CR3 case is the page walk's: AMD's nested walk of guest page tables reports a write, Intel's
#    EPT a read.
set(checks ${hostile_common})
foreach(name ptapic pthigh)
  hostile_console(checks ${name}
    "pagetables: linear 0x100000000 -> 0x100000 reads 0x1badb002, this guest's own image"
    "pagetables: linear 0x100001000 -> 0xb8000 reads 0x6e657374, this guest's own RAM")
  hostile_stopped(checks ${name} "bad memory access" nested_page_fault)
endforeach()
hostile_console(checks ptapic "pagetables: read of linear 0x100002000 -> guest-physical 0xfee00000")
hostile_expect(checks "error: appliance: domain ptapic: read of guest-physical 0xfee00000, outside its memory")
hostile_console(checks pthigh "pagetables: write of linear 0x100002000 -> guest-physical 0x100000000")
hostile_expect(checks "error: appliance: domain pthigh: write of guest-physical 0x100000000, outside its memory")
hostile_console(checks ptcr3 "pagetables: loading CR3 with guest-physical 0x40000000")
hostile_stopped(checks ptcr3 "bad memory access" nested_page_fault)
nestor_appliance_test(hostile_page_tables MANIFEST ${hostile_manifests}/hostile_page_tables.manifest
  GUESTS hostile_pagetables healthy ARGS --expect-status 1 ${checks}
  --expect "^error: appliance: domain ptcr3: (read|write) of guest-physical 0x40000000, outside its memory$"
  --expect "^appliance: 4 of 4 domains built, 3 failed or refused$"
  --reject "^\\[pt[a-z0-9]+\\] pagetables: (read 0x|the write|still running|.*NOT this guest)")

# 3. Exception delivery made impossible: an empty IDT and an unmapped stack end in a triple fault;
#    an IDT outside its memory in the nested page fault of the gate's read (vector 3: +0x30).
set(checks ${hostile_common})
hostile_console(checks emptyidt "triple: lidt base 0x0 limit 0x0, then int3")
hostile_stopped(checks emptyidt "triple fault" triple_fault)
hostile_console(checks badstack "triple: RSP at unmapped linear 0x200000000, then int3")
hostile_stopped(checks badstack "triple fault" triple_fault)
hostile_console(checks idtoutside "triple: lidt base 0x40000000 limit 0xfff, then int3")
hostile_stopped(checks idtoutside "bad memory access" nested_page_fault)
hostile_expect(checks "error: appliance: domain idtoutside: read of guest-physical 0x40000030, outside its memory")
nestor_appliance_test(hostile_triple_fault MANIFEST ${hostile_manifests}/hostile_triple_fault.manifest
  GUESTS hostile_triple_fault healthy ARGS --expect-status 1 ${checks}
  --expect "^appliance: 4 of 4 domains built, 3 failed or refused$"
  --reject "still running after int3")

# 4. SVM and VMX instructions without nested rights: #UD on both vendors (VMCALL/VMMCALL, the
#    hypercall on one of them, are left out); the virtualization MSRs #GP, EFER.SVME refused,
#    CPUID hides SVM and VMX. The domain lives on and exits 0.
set(checks ${hostile_common})
foreach(insn vmrun vmload vmsave stgi clgi skinit invlpga vmxon vmclear vmptrld vmptrst vmread vmwrite
             vmlaunch vmresume vmxoff invept invvpid vmfunc)
  hostile_console(checks virt "virt: ${insn}: #UD")
endforeach()
hostile_console(checks virt
  "virt: 19 of 19 instructions raised #UD"
  "virt: rdmsr VM_CR: #GP(0x0)"
  "virt: rdmsr VM_HSAVE_PA: #GP(0x0)"
  "virt: rdmsr IA32_VMX_BASIC: #GP(0x0)"
  "virt: rdmsr IA32_VMX_PROCBASED_CTLS: #GP(0x0)"
  "virt: rdmsr IA32_FEATURE_CONTROL: no exception, value 0x1"
  "virt: wrmsr IA32_FEATURE_CONTROL=0x5: #GP(0x0)"
  "virt: wrmsr VM_HSAVE_PA=0x200000: #GP(0x0)"
  "virt: wrmsr EFER|SVME: #GP(0x0), EFER.SVME now 0"
  "virt: mov cr4|VMXE: #GP(0x0), CR4.VMXE now 0"
  "virt: mov cr4|bit19: #GP(0x0), mov cr4&~PAE: #GP(0x0), CR4 unchanged 1"
  "virt: wrmsr EFER&~LME: #GP(0x0), EFER unchanged 1"
  "virt: invd: no exception, wbinvd: no exception, wbnoinvd: no exception"
  "virt: rdpmc 0: #GP(0x0), rdpmc 0x40000000: #GP(0x0)"
  "virt: monitor: #UD, mwait: #UD"
  "virt: cpuid.1:ecx.monitor 0, cpuid.80000001:ecx.monitorx 0, cpuid.a:eax (performance counters) 0x0"
  "virt: cpuid.1:ecx.vmx 0, cpuid.80000001:ecx.svm 0, cpuid.1:ecx.hypervisor 1"
  "virt: cpuid 0x4fffffff and 0xffffffff answered"
  "virt: still alive")
# The kernel's count of each kind of exit (its "exits by kind" line): the instructions that reach
# shared hardware exited, each of them (a CPU running them natively would give the same answers).
list(APPEND checks --expect "^appliance: domain virt exits by kind: (.*, )?cache_invalidate 3(,|$)"
  --expect "^appliance: domain virt exits by kind: (.*, )?performance_counter 2(,|$)"
  --expect "^appliance: domain virt exits by kind: (.*, )?monitor_wait 2(,|$)")
set(virt_checks --append "nestor.log=debug" ${checks}
  --expect "^appliance: domain virt exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
  --reject "^error:")
nestor_appliance_test(hostile_virt_instructions MANIFEST ${hostile_manifests}/hostile_virt_instructions.manifest
  GUESTS hostile_virt_instructions healthy ARGS --expect-status 0 ${virt_checks})
# The same in the NESTED_VIRT=OFF build (tests/build makes it for the dev preset): a domain without
# nested virtualization sees exactly the same with the real component linked or the null stub.
nestor_appliance_test(hostile_virt_instructions_nested_off
  MANIFEST ${hostile_manifests}/hostile_virt_instructions.manifest KERNEL_DIR ${NESTOR_KERNEL_NESTED_OFF_DIR}
  GUESTS hostile_virt_instructions healthy ARGS --expect-status 0 ${virt_checks})

# 5. Hypercalls with garbage arguments and forged capability selectors: each refused with its own
#    code (errors.h), the domain lives on and exits 0. Its forged kernel lines stay prefixed with
#    its name, with CR dropped and control bytes shown as '.'.
set(checks ${hostile_common})
hostile_console(checks hypercalls
  "hypercalls: unknown number 6: NESTOR_E_INVALID_HYPERCALL (1)"
  "hypercalls: unknown number 0xffffffffffffffff: NESTOR_E_INVALID_HYPERCALL (1)"
  "hypercalls: abi_version with a non-zero unused argument: NESTOR_E_INVALID_ARGUMENT (2)"
  "hypercalls: identify an empty slot: NESTOR_E_OK (0)"
  "hypercalls: signal through an empty slot: NESTOR_E_SLOT_EMPTY (5)"
  "hypercalls: delete an empty slot: NESTOR_E_SLOT_EMPTY (5)"
  "hypercalls: identify slot 32 of a 32-slot CSpace: NESTOR_E_INDEX_OUT_OF_RANGE (13)"
  "hypercalls: poll cptr 0x21 (guard bits set): NESTOR_E_GUARD_MISMATCH (4)"
  "hypercalls: poll cptr 0x8000000000000001: NESTOR_E_GUARD_MISMATCH (4)"
  "hypercalls: copy through cnode cptr 1 (a notification): NESTOR_E_WRONG_TYPE (7)"
  "hypercalls: signal its own notification (WAIT only): NESTOR_E_INSUFFICIENT_RIGHTS (8)"
  "hypercalls: mint SIGNAL|WAIT from its WAIT-only notification: NESTOR_E_RIGHTS_ESCALATION (9)"
  "hypercalls: mint undefined rights bits: NESTOR_E_INVALID_RIGHTS (10)"
  "hypercalls: mint rights above 32 bits: NESTOR_E_INVALID_RIGHTS (10)"
  "hypercalls: move its notification onto itself: NESTOR_E_SAME_SLOT (14)"
  "hypercalls: retype through its notification: NESTOR_E_WRONG_TYPE (7)"
  "hypercalls: read a vCPU register through its notification: NESTOR_E_WRONG_TYPE (7)"
  "hypercalls: map through an empty slot: NESTOR_E_SLOT_EMPTY (5)"
  "hypercalls: issue I/O ports from an empty slot: NESTOR_E_SLOT_EMPTY (5)"
  "hypercalls: console_write of guest-physical 0x40000000 (outside its memory): NESTOR_E_INVALID_ARGUMENT (2)"
  "hypercalls: console_write of 4097 bytes: NESTOR_E_INVALID_ARGUMENT (2)"
  "hypercalls: console_write running past the end of its memory: NESTOR_E_INVALID_ARGUMENT (2)"
  "hypercalls: console_write wrapping around 2^64: NESTOR_E_INVALID_ARGUMENT (2)"
  "hypercalls: console_write of its own memory"
  "hypercalls: console_write of its own memory: NESTOR_E_OK (0)"
  "hypercalls: mint WAIT into an empty slot: NESTOR_E_OK (0)"
  "hypercalls: mint into the now occupied slot: NESTOR_E_SLOT_OCCUPIED (6)"
  "hypercalls: delete the copy: NESTOR_E_OK (0)"
  "hypercalls: poll its own notification: NESTOR_E_OK (0)"
  "error: forged by hypercalls"
  "appliance: forged by hypercalls."
  "hypercalls: console_write of forged lines: NESTOR_E_OK (0)"
  "hypercalls: 0 unexpected results, still alive")
nestor_appliance_test(hostile_hypercalls MANIFEST ${hostile_manifests}/hostile_hypercalls.manifest
  GUESTS hostile_hypercalls healthy ARGS --expect-status 0 ${checks}
  --expect "^\\[hypercalls\\] \\..2KNESTOR-EXIT: 7$"
  --expect "^appliance: domain hypercalls exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
  --reject "UNEXPECTED" --reject "^error:" --reject "^appliance: forged")

# 6. I/O to ports it does not hold: writes that would reprogram the PIC and PIT, reset the machine
#    (0x64=0xfe, 0xcf9, 0x92) or power it off (ACPI) go nowhere, reads float high; the run ends with
#    the appliance's summary, not a reset. The port it holds (0x81, a DMA page register, slot 10)
#    does reach the machine: it reads back what was written. String I/O stops the domain
#    ("unsupported operation").
set(checks ${hostile_common})
foreach(name ports strings)
  hostile_console(checks ${name}
    "ports: wrote the PIC, PIT, CMOS, 0x64=0xfe, 0xcf9=0x06, 0x92=0x01, 0x604, 0xb004"
    "ports: in PIC 0x21: b 0xff w 0xffff l 0xffffffff"
    "ports: in PIT 0x40: b 0xff w 0xffff l 0xffffffff"
    "ports: in CMOS 0x71: b 0xff w 0xffff l 0xffffffff"
    "ports: in PS/2 status 0x64: b 0xff w 0xffff l 0xffffffff"
    "ports: in PCI config address 0xcf8: b 0xff w 0xffff l 0xffffffff"
    "ports: slot 11: status 0, type 0, rights 0x0")
endforeach()
hostile_console(checks ports
  "ports: held port 0x81 reads back 0x5a after writing 0x5a"
  "ports: still alive")
hostile_console(checks strings
  "ports: slot 10: status 0, type 0, rights 0x0"
  "ports: outsb to 0x80")
hostile_stopped(checks strings "unsupported operation" io)
nestor_appliance_test(hostile_ioports MANIFEST ${hostile_manifests}/hostile_ioports.manifest
  GUESTS hostile_ioports healthy ARGS --expect-status 1 ${checks}
  --expect "^\\[ports\\] ports: slot 10: status 0, type 7, rights 0x[0-9a-f]+$"
  --expect "^appliance: domain ports exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --expect "^appliance: 3 of 3 domains built, 1 failed or refused$"
  --reject "still running after outsb")

# 7. Never giving the CPU back: loops with interrupts off and on are preempted (the healthy domain
#    finishes) and stopped by the watchdog, 20 slices here to keep the run short; HLT with
#    interrupts off ends the domain as "halted" (status 0: the kernel treats HLT as the end).
set(checks ${hostile_common})
foreach(d "clispin;cli-loop" "stispin;sti-loop")
  list(GET d 0 name)
  list(GET d 1 mode)
  hostile_console(checks ${name} "spin: ${mode}")
  hostile_expect(checks "error: appliance: domain ${name} ran 20 time slices without an exit (watchdog)")
  hostile_stopped(checks ${name} watchdog preemption)
endforeach()
hostile_console(checks clihlt "spin: cli-hlt")
nestor_appliance_test(hostile_spin MANIFEST ${hostile_manifests}/hostile_spin.manifest
  GUESTS hostile_spin healthy ARGS --append "nestor.watchdog=20" --expect-status 1 ${checks}
  --expect "^appliance: domain clihlt exited with status 0 \\(halted\\) after [0-9]+ exits$"
  --expect "^appliance: 4 of 4 domains built, 2 failed or refused$"
  --reject "spin: went on")

# 8. #DB and #AC, whose delivery a guest can make endless on the CPU, no interrupt getting through
#    (CVE-2015-8104, CVE-2015-5307): a single step, a data breakpoint, an instruction breakpoint,
#    a data breakpoint on the stack the #DB is delivered on (its delivery raises a second #DB),
#    and an #AC from a ring-3 push onto a misaligned stack. The guest sees each as the CPU delivers
#    it; the kernel's count of exception exits (its exits by kind line) shows each was intercepted.
set(checks ${hostile_common})
hostile_console(checks dbg
  "debug: single step: 1 #DB, after the nop: yes, dr6.bs 1"
  "debug: data breakpoint: 1 #DB, after the write: yes, dr6.b1 1"
  "debug: instruction breakpoint: 1 #DB, on the instruction: yes, dr6.b2 1, then it ran"
  "debug: still alive")
# On a CPU the stack breakpoint's #DB comes at the handler's entry with DR6.B0; QEMU and Bochs do
# not check the frame's writes against the breakpoints, so there the delivery raises none. QEMU
# also loses an injected #DB whose own delivery hits its watchpoint: this line is Bochs' only (on
# QEMU the domain must still finish, and the exit count holds that #DB's exit).
set(stack_breakpoint --expect
  "^\\[dbg\\] debug: breakpoint on the stack #DB is delivered on: the trigger's #DB after its write: yes, raised by its delivery: (0|1 at the handler's entry: yes, dr6\\.b0 1)$")
# QEMU does not check alignment (no #AC: the push goes through, ud2 ends ring 3); Bochs does. The
# exception exits are the guest's #DBs and #ACs, each one: a backend that let them through to the
# guest unseen would have none.
set(ac_bochs ${checks} ${stack_breakpoint})
hostile_console(ac_bochs dbg "debug: ring-3 push, misaligned stack, AC: #AC(0x0) on the push: yes, cpl 3, rsp misaligned, ac 1")
list(APPEND ac_bochs --expect "^appliance: domain dbg exits by kind: (.*, )?exception 5(,|$)")
set(ac_qemu)
hostile_console(ac_qemu dbg "debug: ring-3 push, misaligned stack, AC: vector 6 at 0x1 past the push, cpl 3, rsp misaligned, ac 1")
# QEMU's lost #DB (above) is sometimes delivered after all: 4 or 5 exits, none without the intercept.
list(APPEND ac_qemu --expect "^appliance: domain dbg exits by kind: (.*, )?exception [45](,|$)")
nestor_appliance_test(hostile_debug_exceptions MANIFEST ${hostile_manifests}/hostile_debug_exceptions.manifest
  GUESTS hostile_debug_exceptions healthy ARGS --append "nestor.log=debug" --expect-status 0
  --expect "^appliance: domain dbg exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
  --reject "^error:"
  SVM_ARGS ${checks} ${ac_qemu} VMX_ARGS ${ac_bochs})

# 9. Exiting all the time and never yielding: CPUID in a loop, listed before the healthy domain so
#    that it runs first. Its time slice spans its runs, so it is preempted and the healthy domain
#    finishes while the loop still runs; a slice restarted at each entry would keep the CPU with
#    the loop until its end. The loop then ends by itself (status 0).
set(checks ${hostile_common})
hostile_console(checks cpuidloop "cpuidloop: 200000 CPUIDs in a loop" "cpuidloop: done")
nestor_appliance_test(hostile_cpuid_loop MANIFEST ${hostile_manifests}/hostile_cpuid_loop.manifest
  GUESTS hostile_cpuid_loop healthy ARGS --expect-status 0 ${checks}
  --expect-before "^appliance: domain healthy exited with status 0 " "^\\[cpuidloop\\] cpuidloop: done$"
  --expect "^appliance: domain cpuidloop was preempted [0-9]+ times$"
  --expect "^appliance: domain cpuidloop exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
  --reject "^error:")
