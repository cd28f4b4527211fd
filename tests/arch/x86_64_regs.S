/* Test helper: long uco_test_regs(void (*fn)(void), long seed)
 * Loads every callee-saved register with a value derived from seed, calls
 * fn (which switches tasks), and returns a bit mask of the registers that
 * did not come back intact (0 = all preserved). */
        .text
        .globl  uco_test_regs
        .type   uco_test_regs, @function
uco_test_regs:
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp            /* 6 pushes + 8: aligned for the call */
        movq    %rsi, (%rsp)
        movq    %rsi, %rbx
        leaq    1(%rsi), %rbp
        leaq    2(%rsi), %r12
        leaq    3(%rsi), %r13
        leaq    4(%rsi), %r14
        leaq    5(%rsi), %r15
        call    *%rdi
        movq    (%rsp), %rsi
        xorl    %eax, %eax
        .macro  CHK reg, off, bit
        leaq    \off(%rsi), %rdx
        cmpq    %rdx, \reg
        je      1f
        orq     $\bit, %rax
1:
        .endm
        CHK     %rbx, 0, 1
        CHK     %rbp, 1, 2
        CHK     %r12, 2, 4
        CHK     %r13, 3, 8
        CHK     %r14, 4, 16
        CHK     %r15, 5, 32
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .size   uco_test_regs, .-uco_test_regs
        .section .note.GNU-stack, "", @progbits
