/*
 * Context switch for x86-64 System V.
 *
 * void uco_arch_switch(void **save_sp, void *new_sp);
 *
 * Saves what the ABI says a callee must preserve (rbx, rbp, r12-r15, the
 * MXCSR and the x87 control word) on the current stack, stores the stack
 * pointer in *save_sp, loads new_sp and restores the same set from there.
 * Everything else is caller-saved, so the C caller has already spilled it.
 * The same routine suspends and resumes: a fresh stack just starts with a
 * frame laid out like the one below (see coro.c).
 *
 * Frame, from the saved sp upwards (8-byte slots):
 *   0: mxcsr (low 4 bytes) | x87 control word (bytes 4-5)
 *   8: r15  16: r14  24: r13  32: r12  40: rbx  48: rbp  56: return address
 */
        .text
        .globl  uco_arch_switch
        .hidden uco_arch_switch
        .type   uco_arch_switch, @function
        .p2align 4
uco_arch_switch:
        .cfi_startproc
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbp, 0
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbx, 0
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r12, 0
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r13, 0
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r14, 0
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r15, 0
        subq    $8, %rsp
        .cfi_adjust_cfa_offset 8
        /* FP control state is callee-saved: a task that changes its
         * rounding mode must not change anyone else's. */
        stmxcsr (%rsp)
        fnstcw  4(%rsp)

        movq    56(%rsp), %rax  /* where this side returns: see below */

        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        /* From here on the CFI describes the new stack, whose frame has the
         * same layout, so unwinding stays correct on both sides. */

        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        .cfi_adjust_cfa_offset -8
        popq    %r15
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r15
        popq    %r14
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r14
        popq    %r13
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r13
        popq    %r12
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r12
        popq    %rbx
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbx
        popq    %rbp
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbp
        /* Our caller's call pushed its return address onto the CPU's
         * return stack.  When the other side resumes at that same address
         * (tasks parked at one await, the common case), "ret" pops it as
         * predicted and the stack stays balanced.  Elsewhere a "ret" would
         * always miss, so an indirect jump takes the other address (the
         * jump is predicted like any other branch), leaving one stale
         * entry that costs the next return a miss. */
        cmpq    %rax, (%rsp)
        jne     1f
        ret
1:      popq    %rcx
        .cfi_adjust_cfa_offset -8
        .cfi_register %rip, %rcx
        jmpq    *%rcx
        .cfi_endproc
        .size   uco_arch_switch, .-uco_arch_switch

/*
 * First code a new task runs, reached through the "ret" above with
 * r12 = argument and r13 = entry function.  The entry never returns (a
 * finished task switches away for good), so the trap below is unreachable.
 * rip is marked undefined: debuggers and perf stop unwinding here, with the
 * task's entry function as the outermost real frame.
 */
        .globl  uco_arch_trampoline
        .hidden uco_arch_trampoline
        .type   uco_arch_trampoline, @function
        .p2align 4
uco_arch_trampoline:
        .cfi_startproc
        .cfi_undefined %rip
        xorl    %ebp, %ebp
        movq    %r12, %rdi
        /* Entered like a function (rsp = 8 mod 16); realign for the call. */
        subq    $8, %rsp
        call    *%r13
        ud2
        .cfi_endproc
        .size   uco_arch_trampoline, .-uco_arch_trampoline

        .section .note.GNU-stack, "", @progbits
