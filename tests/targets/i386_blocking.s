# A static 32-bit i386 program for hp-check's process.arch: says "ready", then blocks in
# read(0) until its standard input has a byte or is closed, and exits. Built with
# `as --32` and `ld -m elf_i386` (no 32-bit C library needed).
        .globl _start
        .text
_start:
        movl    $4, %eax            # write(1, msg, 6)
        movl    $1, %ebx
        movl    $msg, %ecx
        movl    $6, %edx
        int     $0x80
        movl    $3, %eax            # read(0, buf, 1)
        xorl    %ebx, %ebx
        movl    $buf, %ecx
        movl    $1, %edx
        int     $0x80
        movl    $1, %eax            # exit(0)
        xorl    %ebx, %ebx
        int     $0x80
        .data
msg:    .ascii  "ready\n"
        .bss
buf:    .skip   1
