/* SPDX-License-Identifier: MIT */
/*
 * Error numbers without <errno.h>, which a freestanding build does not have.
 * Values are Linux's, so a hosted embedder can compare them with errno.h's.
 */
#ifndef S2MMU_ERRNO_H
#define S2MMU_ERRNO_H

#define S2_ENOENT 2
#define S2_EIO 5
#define S2_ENOMEM 12
#define S2_EFAULT 14
#define S2_EBUSY 16
#define S2_EEXIST 17
#define S2_EINVAL 22
#define S2_ENOSPC 28
#define S2_ERANGE 34
#define S2_EAGAIN 11
#define S2_ENOTSUP 95

#ifndef ENOENT
#define ENOENT S2_ENOENT
#define EIO S2_EIO
#define ENOMEM S2_ENOMEM
#define EFAULT S2_EFAULT
#define EBUSY S2_EBUSY
#define EEXIST S2_EEXIST
#define EINVAL S2_EINVAL
#define ENOSPC S2_ENOSPC
#define ERANGE S2_ERANGE
#define EAGAIN S2_EAGAIN
#define ENOTSUP S2_ENOTSUP
#endif

#endif
