/* Built-in guests: real-mode code copied to guest-physical GUEST_BASE and entered with
 * CS = DS = ES = SS = 0. Addresses inside are written ABS(label) = GUEST_BASE + offset.
 *
 * "smoke" exercises every exit the kernel handles and reports on its console (COM1, one line per
 * check); it writes a bitmask of failed checks to its exit port 0xF4 (0 = all passed):
 *   bit 0 hypervisor signature wrong     bit 4 null hypercall did not return 0
 *   bit 1 CPUID.1 hypervisor bit clear   bit 5 unknown hypercall returned 0
 *   bit 2 CPUID.1 VMX visible            bit 6 RDMSR of a denied MSR gave no #GP
 *   bit 3 CPUID.80000001 SVM visible     bit 7 a virtualization instruction gave no #UD
 * It picks its tests by the CPUID vendor. On AMD the hypercall is VMMCALL and the virtualization
 * instructions tested are VMRUN and CLGI; on Intel the hypercall is VMCALL and they are VMXON,
 * VMCLEAR, VMPTRLD, VMPTRST, VMREAD, VMWRITE, VMLAUNCH, VMRESUME, VMXOFF, INVEPT and INVVPID (an
 * Intel CPU raises #UD for SVM instructions itself, an AMD one for VMX instructions). In real mode
 * the CPU itself raises #UD for them; the guest then switches to 16-bit protected mode, where they
 * exit to the kernel, which injects the #UD.
 * "npf" reads guest-physical 0x20000, outside its 64 KiB, and must be stopped by the kernel.
 * "spin" computes for a while (3 million loop iterations) without a single exit, then exits with
 * status 0: only the kernel's time slice (preemption) takes the CPU back in between.
 */
#define GUEST_BASE 0x1000
#define ABS(label) (GUEST_BASE + (label) - guest_code_start)
#define FAILS 0x500      /* failure bitmask */
#define GOT_UD 0x501     /* set by the #UD handler */
#define GOT_GP 0x502     /* set by the #GP handler */
#define IS_INTEL 0x503   /* 1: CPUID vendor GenuineIntel */
#define UD_SKIP 0x504    /* bytes the #UD handler skips */
#define SCRATCH 0x600    /* memory operand of the VMX instructions (16 bytes) */
#define COM1 0x3f8
#define EXIT_PORT 0xf4

    .section .rodata.nestor_builtin_guests, "a"
    .globl nestor_builtin_guest_code, nestor_builtin_guest_code_end
    .globl nestor_smoke_guest_entry, nestor_npf_guest_entry, nestor_bench_guest_entry
    .globl nestor_spin_guest_entry
    .code16
nestor_builtin_guest_code:
guest_code_start:

smoke_entry:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw $0x1000, %sp
    movb $0, FAILS
    movb $0, GOT_UD
    movb $0, GOT_GP
    movb $0, IS_INTEL
    movb $3, UD_SKIP
    movw $ABS(ud_handler), 6*4
    movw $0, 6*4+2
    movw $ABS(gp_handler), 13*4
    movw $0, 13*4+2

    /* CPUID 0: the highest basic leaf and the vendor, as the host has them. */
    xorl %eax, %eax
    xorl %ecx, %ecx
    cpuid
    movw $ABS(msg_cpuid0), %si
    call puts
    call puthex32
    movw $ABS(msg_vendor), %si
    call puts
    movl %ebx, %eax
    call put4
    movl %edx, %eax
    call put4
    movl %ecx, %eax
    call put4
    call newline
    cmpl $0x756e6547, %ebx          /* "Genu" */
    sete IS_INTEL

    /* CPUID 0x40000000: the hypervisor leaf. */
    movl $0x40000000, %eax
    xorl %ecx, %ecx
    cpuid
    movw $ABS(msg_cpuid4), %si
    call puts
    call puthex32
    movw $ABS(msg_signature), %si
    call puts
    movl %ebx, %eax
    call put4
    movl %ecx, %eax
    call put4
    movl %edx, %eax
    call put4
    call newline
    cmpl $0x7473654e, %ebx          /* "Nest" */
    jne 1f
    cmpl $0x654e726f, %ecx          /* "orNe" */
    jne 1f
    cmpl $0x726f7473, %edx          /* "stor" */
    je 2f
1:  orb $0x01, FAILS
2:

    /* CPUID 1: hypervisor present, VMX hidden. */
    movl $1, %eax
    xorl %ecx, %ecx
    cpuid
    movw $ABS(msg_cpuid1), %si
    call puts
    btl $31, %ecx
    setc %al
    call putbit
    jc 1f
    orb $0x02, FAILS
1:  movw $ABS(msg_vmx), %si
    call puts
    btl $5, %ecx
    setc %al
    call putbit
    call newline
    jnc 1f
    orb $0x04, FAILS
1:

    /* CPUID 0x80000001: SVM hidden. */
    movl $0x80000001, %eax
    xorl %ecx, %ecx
    cpuid
    movw $ABS(msg_cpuid8), %si
    call puts
    btl $2, %ecx
    setc %al
    call putbit
    call newline
    jnc 1f
    orb $0x08, FAILS
1:

    /* VMMCALL (AMD) / VMCALL (Intel) 0: the null hypercall returns 0. */
    movl $0xffffffff, %ebx
    xorl %eax, %eax
    call hypercall
    call put_hypercall_name
    movw $ABS(msg_hc0), %si
    call puts
    call puthex32
    call newline
    testl %eax, %eax
    jz 1f
    orb $0x10, FAILS
1:
    /* Hypercall 0x1234: an unknown hypercall returns an error. */
    movl $0x1234, %eax
    call hypercall
    call put_hypercall_name
    movw $ABS(msg_hc1), %si
    call puts
    call puthex32
    call newline
    testl %eax, %eax
    jnz 1f
    orb $0x20, FAILS
1:

    /* RDMSR 0x8B (allowed: reads 0), then RDMSR VM_CR (denied: #GP). */
    movl $0x8b, %ecx
    movl $0xffffffff, %eax
    rdmsr
    movw $ABS(msg_msr8b), %si
    call puts
    call puthex32
    call newline
    movl $0xc0010114, %ecx
    rdmsr                           /* 2 bytes: the #GP handler skips them */
    movw $ABS(msg_msrvmcr), %si
    call puts
    cmpb $0, GOT_GP
    jne 1f
    orb $0x40, FAILS
    movw $ABS(msg_no), %si
    call puts
1:  movw $ABS(msg_gp), %si
    call puts
    call newline

    cmpb $0, IS_INTEL
    je svm_instructions
    jmp vmx_instructions

    /* VMRUN and CLGI: #UD, as on a CPU without SVM. */
svm_instructions:
    .byte 0x0f, 0x01, 0xd8          /* vmrun: 3 bytes, the #UD handler skips them */
    movw $ABS(msg_vmrun), %si
    call puts
    cmpb $0, GOT_UD
    jne 1f
    orb $0x80, FAILS
    movw $ABS(msg_no), %si
    call puts
1:  movw $ABS(msg_ud), %si
    call puts
    call newline
    movb $0, GOT_UD
    .byte 0x0f, 0x01, 0xdd          /* clgi */
    movw $ABS(msg_clgi), %si
    call puts
    cmpb $0, GOT_UD
    jne 1f
    orb $0x80, FAILS
    movw $ABS(msg_no), %si
    call puts
1:  movw $ABS(msg_ud), %si
    call puts
    call newline

    /* The same in 16-bit protected mode, where SVM instructions are not #UD by themselves: the
     * CPU exits to the kernel, which injects #UD (delivered through a 286 interrupt gate to the
     * same handler). */
    movb $0, GOT_UD
    lgdt ABS(gdt_descriptor)
    lidt ABS(pm_idt_descriptor)
    movl %cr0, %eax
    orb $1, %al
    movl %eax, %cr0
    ljmp $0x08, $ABS(1f)
1:  movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $0x2000, %eax              /* a plausible VMCB address: QEMU checks RAX before the intercept */
    .byte 0x0f, 0x01, 0xd8          /* vmrun */
    movb GOT_UD, %bl
    movb $0, GOT_UD
    .byte 0x0f, 0x01, 0xdd          /* clgi */
    movb GOT_UD, %bh
    movl %cr0, %eax
    andb $0xfe, %al
    movl %eax, %cr0
    ljmp $0, $ABS(2f)
2:  xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    lidt ABS(rm_idt_descriptor)
    movw $ABS(msg_pm), %si
    call puts
    testb %bl, %bl
    jz 3f
    testb %bh, %bh
    jnz 4f
3:  orb $0x80, FAILS
    movw $ABS(msg_no), %si
    call puts
4:  movw $ABS(msg_ud), %si
    call puts
    call newline

    /* Report and exit with the failure mask. */
report:
    movw $ABS(msg_done), %si
    call puts
    xorl %eax, %eax
    movb FAILS, %al
    call puthex32
    call newline
    outb %al, $EXIT_PORT
    hlt                             /* not reached: the kernel stops the guest at the exit port */
3:  jmp 3b

/* Intel: VMX instructions get #UD, as on a CPU without VMX. */
vmx_instructions:
    /* In real mode the CPU raises #UD itself. */
    movb $6, UD_SKIP
    vmxon SCRATCH                   /* f3 0f c7 36 disp16: 6 bytes */
    movw $ABS(msg_vmxon_rm), %si
    call report_ud
    movb $5, UD_SKIP
    vmptrld SCRATCH                 /* 0f c7 36 disp16: 5 bytes */
    movw $ABS(msg_vmptrld_rm), %si
    call report_ud

    /* In 16-bit protected mode they exit to the kernel, which injects #UD; each line is printed
     * from protected mode (DS base 0, so the strings are where they were). */
    lgdt ABS(gdt_descriptor)
    lidt ABS(pm_idt_descriptor)
    movl %cr0, %eax
    orb $1, %al
    movl %eax, %cr0
    ljmp $0x08, $ABS(1f)
1:  movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movb $6, UD_SKIP
    vmxon SCRATCH
    movw $ABS(msg_vmxon), %si
    call report_ud
    .byte 0x66, 0x0f, 0xc7, 0x36    /* vmclear SCRATCH: 6 bytes */
    .word SCRATCH
    movw $ABS(msg_vmclear), %si
    call report_ud
    movb $5, UD_SKIP
    vmptrld SCRATCH
    movw $ABS(msg_vmptrld), %si
    call report_ud
    .byte 0x0f, 0xc7, 0x3e          /* vmptrst SCRATCH: 5 bytes */
    .word SCRATCH
    movw $ABS(msg_vmptrst), %si
    call report_ud
    xorl %eax, %eax                 /* field 0 (VPID) */
    .byte 0x0f, 0x78, 0x06          /* vmread SCRATCH, eax: 5 bytes */
    .word SCRATCH
    movw $ABS(msg_vmread), %si
    call report_ud
    .byte 0x0f, 0x79, 0x06          /* vmwrite eax, SCRATCH: 5 bytes */
    .word SCRATCH
    movw $ABS(msg_vmwrite), %si
    call report_ud
    movb $3, UD_SKIP
    .byte 0x0f, 0x01, 0xc2          /* vmlaunch */
    movw $ABS(msg_vmlaunch), %si
    call report_ud
    .byte 0x0f, 0x01, 0xc3          /* vmresume */
    movw $ABS(msg_vmresume), %si
    call report_ud
    .byte 0x0f, 0x01, 0xc4          /* vmxoff */
    movw $ABS(msg_vmxoff), %si
    call report_ud
    movb $7, UD_SKIP
    movl $1, %eax                   /* single-context */
    .byte 0x66, 0x0f, 0x38, 0x80, 0x06  /* invept eax, SCRATCH: 7 bytes */
    .word SCRATCH
    movw $ABS(msg_invept), %si
    call report_ud
    .byte 0x66, 0x0f, 0x38, 0x81, 0x06  /* invvpid eax, SCRATCH: 7 bytes */
    .word SCRATCH
    movw $ABS(msg_invvpid), %si
    call report_ud
    movl %cr0, %eax
    andb $0xfe, %al
    movl %eax, %cr0
    ljmp $0, $ABS(2f)
2:  xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    lidt ABS(rm_idt_descriptor)
    jmp report

/* Prints the string at SI and "#UD" (or "no #UD", failing bit 7) by GOT_UD, then clears GOT_UD. */
report_ud:
    call puts
    cmpb $0, GOT_UD
    jne 1f
    orb $0x80, FAILS
    movw $ABS(msg_no), %si
    call puts
1:  movw $ABS(msg_ud), %si
    call puts
    call newline
    movb $0, GOT_UD
    ret

/* The hypercall instruction of this CPU's vendor: VMMCALL on AMD, VMCALL on Intel. */
hypercall:
    cmpb $0, IS_INTEL
    jne 1f
    .byte 0x0f, 0x01, 0xd9          /* vmmcall */
    ret
1:  .byte 0x0f, 0x01, 0xc1          /* vmcall */
    ret
put_hypercall_name:
    pushw %si
    movw $ABS(msg_vmmcall), %si
    cmpb $0, IS_INTEL
    je 1f
    movw $ABS(msg_vmcall), %si
1:  call puts
    popw %si
    ret

npf_entry:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %ss
    movw $0x1000, %sp
    movw $ABS(msg_npf), %si
    call puts
    movw $0x2000, %ax
    movw %ax, %es
    movb %es:0, %al                 /* guest-physical 0x20000: not guest memory */
    xorw %ax, %ax
    movw %ax, %es
    movw $ABS(msg_npf_survived), %si
    call puts
    movb $1, %al
    outb %al, $EXIT_PORT
4:  jmp 4b

/* "cpuid-bench": N = 1000 CPUID round trips timed with RDTSC (one tick per instruction under
 * QEMU -icount shift=0); prints the per-iteration figure (3 loop instructions included). */
bench_entry:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %ss
    movw $0x1000, %sp
    rdtsc
    movl %eax, %esi
    movl $1000, %edi
1:  xorl %eax, %eax
    cpuid
    decl %edi
    jnz 1b
    rdtsc
    subl %esi, %eax
    xorl %edx, %edx
    movl $1000, %ecx
    divl %ecx
    movw $ABS(msg_bench), %si
    call puts
    call puthex32
    call newline
    xorb %al, %al
    outb %al, $EXIT_PORT
5:  jmp 5b

spin_entry:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %ss
    movw $0x1000, %sp
    movl $3000000, %ecx
1:  decl %ecx
    jnz 1b
    movw $ABS(msg_spin), %si
    call puts
    xorb %al, %al
    outb %al, $EXIT_PORT
6:  jmp 6b

/* Exception handlers: note the exception, step over the faulting instruction, return. */
ud_handler:
    movb $1, GOT_UD
    pushw %bp
    movw %sp, %bp
    pushw %ax
    movzbw UD_SKIP, %ax             /* the length of the instruction under test */
    addw %ax, 2(%bp)
    popw %ax
    popw %bp
    iret
gp_handler:
    movb $1, GOT_GP
    pushw %bp
    movw %sp, %bp
    addw $2, 2(%bp)                 /* RDMSR is 2 bytes */
    popw %bp
    iret

/* Console output; every routine preserves all registers and flags but SI. */
putc:                               /* AL */
    pushw %dx
    movw $COM1, %dx
    outb %al, %dx
    popw %dx
    ret
puts:                               /* the NUL-terminated string at DS:SI */
    pushfl
    pushal
1:  lodsb
    testb %al, %al
    jz 2f
    call putc
    jmp 1b
2:  popal
    popfl
    ret
put4:                               /* the 4 characters in EAX, low byte first */
    pushfl
    pushal
    movw $4, %cx
1:  call putc
    shrl $8, %eax
    loop 1b
    popal
    popfl
    ret
putbit:                             /* AL = 0 or 1, as a digit */
    pushfl
    pushw %ax
    addb $'0', %al
    call putc
    popw %ax
    popfl
    ret
puthex32:                           /* EAX as 0x%08x */
    pushfl
    pushal
    movl %eax, %ebx
    movb $'0', %al
    call putc
    movb $'x', %al
    call putc
    movw $8, %cx
1:  roll $4, %ebx
    movb %bl, %al
    andb $0x0f, %al
    addb $'0', %al
    cmpb $'9', %al
    jbe 2f
    addb $('a' - '9' - 1), %al
2:  call putc
    loop 1b
    popal
    popfl
    ret
newline:
    pushfl
    pushw %ax
    movb $10, %al
    call putc
    popw %ax
    popfl
    ret

    .balign 8
gdt:
    .quad 0
    .quad 0x00009b000000ffff        /* 0x08: 16-bit code, base 0, limit 0xFFFF (accessed: never written) */
    .quad 0x000093000000ffff        /* 0x10: 16-bit data, base 0, limit 0xFFFF */
gdt_end:
pm_idt:
    .fill 6, 8, 0
    .word ABS(ud_handler), 0x08, 0x8600, 0   /* vector 6: 286 interrupt gate */
pm_idt_end:
gdt_descriptor:
    .word gdt_end - gdt - 1
    .long ABS(gdt)
pm_idt_descriptor:
    .word pm_idt_end - pm_idt - 1
    .long ABS(pm_idt)
rm_idt_descriptor:
    .word 0x3ff
    .long 0

msg_pm:        .asciz "vmrun, clgi (protected mode): "
msg_bench:     .asciz "cpuid round trip (ticks per iteration): "
msg_cpuid0:    .asciz "cpuid 0: max leaf "
msg_vendor:    .asciz " vendor "
msg_cpuid4:    .asciz "cpuid 40000000: max leaf "
msg_signature: .asciz " signature "
msg_cpuid1:    .asciz "cpuid 1: hypervisor="
msg_vmx:       .asciz " vmx="
msg_cpuid8:    .asciz "cpuid 80000001: svm="
msg_vmmcall:   .asciz "vmmcall"
msg_vmcall:    .asciz "vmcall"
msg_hc0:       .asciz " 0: rax="
msg_hc1:       .asciz " 0x1234: rax="
msg_vmxon_rm:  .asciz "vmxon (real mode): "
msg_vmptrld_rm: .asciz "vmptrld (real mode): "
msg_vmxon:     .asciz "vmxon (protected mode): "
msg_vmclear:   .asciz "vmclear (protected mode): "
msg_vmptrld:   .asciz "vmptrld (protected mode): "
msg_vmptrst:   .asciz "vmptrst (protected mode): "
msg_vmread:    .asciz "vmread (protected mode): "
msg_vmwrite:   .asciz "vmwrite (protected mode): "
msg_vmlaunch:  .asciz "vmlaunch (protected mode): "
msg_vmresume:  .asciz "vmresume (protected mode): "
msg_vmxoff:    .asciz "vmxoff (protected mode): "
msg_invept:    .asciz "invept (protected mode): "
msg_invvpid:   .asciz "invvpid (protected mode): "
msg_msr8b:     .asciz "rdmsr 8b: eax="
msg_msrvmcr:   .asciz "rdmsr c0010114: "
msg_vmrun:     .asciz "vmrun (real mode): "
msg_clgi:      .asciz "clgi (real mode): "
msg_no:        .asciz "no "
msg_gp:        .asciz "#GP"
msg_ud:        .asciz "#UD"
msg_done:      .asciz "smoke: done, failures "
msg_spin:      .asciz "spin: done\n"
msg_npf:       .asciz "npf: reading guest-physical 0x20000\n"
msg_npf_survived: .asciz "npf: read outside guest memory did not stop the guest\n"

nestor_builtin_guest_code_end:

    .code64
    .section .rodata.nestor_builtin_guests_entries, "a"
    .balign 8
nestor_smoke_guest_entry: .quad ABS(smoke_entry)
nestor_npf_guest_entry:   .quad ABS(npf_entry)
nestor_bench_guest_entry: .quad ABS(bench_entry)
nestor_spin_guest_entry:  .quad ABS(spin_entry)

    .section .note.GNU-stack, "", @progbits
