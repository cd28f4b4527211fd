/*
 * Context switch for AArch64 (AAPCS64).
 *
 * void uco_arch_switch(void **save_sp, void *new_sp);
 *
 * Saves the callee-saved state the procedure call standard requires:
 * x19-x28, the frame pointer x29, the link register x30, the low 64 bits
 * of v8-v15 (d8-d15) and FPCR (rounding mode and trap enables belong to
 * the task).  One routine suspends and resumes; a fresh stack starts with
 * a frame laid out like the one below (see coro.c).
 *
 * Frame, from the saved sp upwards:
 *   0: x19 x20  16: x21 x22  32: x23 x24  48: x25 x26  64: x27 x28
 *   80: x29 x30  96: d8 d9  112: d10 d11  128: d12 d13  144: d14 d15
 *   160: fpcr  168: padding (keeps sp 16-byte aligned)
 */
        .text
        .globl  uco_arch_switch
        .hidden uco_arch_switch
        .type   uco_arch_switch, %function
        .p2align 4
uco_arch_switch:
        .cfi_startproc
        sub     sp, sp, #176
        .cfi_def_cfa_offset 176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        .cfi_offset x19, -176
        .cfi_offset x20, -168
        .cfi_offset x21, -160
        .cfi_offset x22, -152
        .cfi_offset x23, -144
        .cfi_offset x24, -136
        .cfi_offset x25, -128
        .cfi_offset x26, -120
        .cfi_offset x27, -112
        .cfi_offset x28, -104
        .cfi_offset x29, -96
        .cfi_offset x30, -88
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]

        mov     x9, sp
        str     x9, [x0]
        mov     sp, x1
        /* The new stack has the same frame layout: the CFI above holds. */

        ldr     x9, [sp, #160]
        msr     fpcr, x9
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        add     sp, sp, #176
        .cfi_def_cfa_offset 0
        ret
        .cfi_endproc
        .size   uco_arch_switch, .-uco_arch_switch

/*
 * First code a new task runs, reached through the "ret" above with
 * x19 = argument and x20 = entry function.  The entry never returns (a
 * finished task switches away for good).  x30 is marked undefined so that
 * unwinders stop here, with the entry function as the outermost frame.
 */
        .globl  uco_arch_trampoline
        .hidden uco_arch_trampoline
        .type   uco_arch_trampoline, %function
        .p2align 4
uco_arch_trampoline:
        .cfi_startproc
        .cfi_undefined x30
        mov     x29, #0
        mov     x0, x19
        blr     x20
        brk     #0
        .cfi_endproc
        .size   uco_arch_trampoline, .-uco_arch_trampoline

        .section .note.GNU-stack, "", %progbits
