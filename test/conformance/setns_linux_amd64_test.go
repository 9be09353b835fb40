package conformance

// sysSetns is setns(2) on linux/amd64 (the syscall package has no constant for it there).
const sysSetns = 308
