/* Test helper: long uco_test_regs(void (*fn)(void), long seed)
 * Loads x19-x28 and d8-d15 with values derived from seed, calls fn (which
 * switches tasks), and returns a bit mask of the registers that did not
 * come back intact, x29 (frame pointer) included (0 = all preserved). */
        .text
        .globl  uco_test_regs
        .type   uco_test_regs, %function
uco_test_regs:
        stp     x29, x30, [sp, #-176]!
        mov     x29, sp
        stp     x19, x20, [sp, #16]
        stp     x21, x22, [sp, #32]
        stp     x23, x24, [sp, #48]
        stp     x25, x26, [sp, #64]
        stp     x27, x28, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        str     x1, [sp, #160]
        .macro  SETX reg, off
        add     \reg, x1, #\off
        .endm
        .macro  SETD reg, off
        add     x9, x1, #\off
        fmov    \reg, x9
        .endm
        SETX    x19, 0
        SETX    x20, 1
        SETX    x21, 2
        SETX    x22, 3
        SETX    x23, 4
        SETX    x24, 5
        SETX    x25, 6
        SETX    x26, 7
        SETX    x27, 8
        SETX    x28, 9
        SETD    d8, 10
        SETD    d9, 11
        SETD    d10, 12
        SETD    d11, 13
        SETD    d12, 14
        SETD    d13, 15
        SETD    d14, 16
        SETD    d15, 17
        blr     x0
        ldr     x1, [sp, #160]
        mov     x0, #0
        .macro  CHKX reg, off, bit
        add     x10, x1, #\off
        cmp     \reg, x10
        cset    x9, ne
        orr     x0, x0, x9, lsl #\bit
        .endm
        .macro  CHKD reg, off, bit
        add     x10, x1, #\off
        fmov    x11, \reg
        cmp     x11, x10
        cset    x9, ne
        orr     x0, x0, x9, lsl #\bit
        .endm
        CHKX    x19, 0, 0
        CHKX    x20, 1, 1
        CHKX    x21, 2, 2
        CHKX    x22, 3, 3
        CHKX    x23, 4, 4
        CHKX    x24, 5, 5
        CHKX    x25, 6, 6
        CHKX    x26, 7, 7
        CHKX    x27, 8, 8
        CHKX    x28, 9, 9
        CHKD    d8, 10, 10
        CHKD    d9, 11, 11
        CHKD    d10, 12, 12
        CHKD    d11, 13, 13
        CHKD    d12, 14, 14
        CHKD    d13, 15, 15
        CHKD    d14, 16, 16
        CHKD    d15, 17, 17
        mov     x10, sp
        cmp     x29, x10
        cset    x9, ne
        orr     x0, x0, x9, lsl #18
        ldp     x19, x20, [sp, #16]
        ldp     x21, x22, [sp, #32]
        ldp     x23, x24, [sp, #48]
        ldp     x25, x26, [sp, #64]
        ldp     x27, x28, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        ldp     x29, x30, [sp], #176
        ret
        .size   uco_test_regs, .-uco_test_regs
        .section .note.GNU-stack, "", %progbits
