/* Prints the sizes and ioctl numbers of the V4L2 structures glance declares by hand
 * (src/source/v4l2/mod.rs), from the kernel's own header. tests/run.rs compiles this with the
 * system C compiler and compares. Build: cc tests/v4l2_abi.c -o v4l2_abi */
#include <stdio.h>
#include <linux/videodev2.h>

int main(void) {
    printf("sizeof_v4l2_capability %zu\n", sizeof(struct v4l2_capability));
    printf("sizeof_v4l2_format %zu\n", sizeof(struct v4l2_format));
    printf("sizeof_v4l2_requestbuffers %zu\n", sizeof(struct v4l2_requestbuffers));
    printf("sizeof_v4l2_buffer %zu\n", sizeof(struct v4l2_buffer));
    printf("sizeof_v4l2_streamparm %zu\n", sizeof(struct v4l2_streamparm));
    printf("VIDIOC_QUERYCAP %lu\n", (unsigned long)VIDIOC_QUERYCAP);
    printf("VIDIOC_S_FMT %lu\n", (unsigned long)VIDIOC_S_FMT);
    printf("VIDIOC_REQBUFS %lu\n", (unsigned long)VIDIOC_REQBUFS);
    printf("VIDIOC_QUERYBUF %lu\n", (unsigned long)VIDIOC_QUERYBUF);
    printf("VIDIOC_QBUF %lu\n", (unsigned long)VIDIOC_QBUF);
    printf("VIDIOC_DQBUF %lu\n", (unsigned long)VIDIOC_DQBUF);
    printf("VIDIOC_STREAMON %lu\n", (unsigned long)VIDIOC_STREAMON);
    printf("VIDIOC_STREAMOFF %lu\n", (unsigned long)VIDIOC_STREAMOFF);
    printf("VIDIOC_S_PARM %lu\n", (unsigned long)VIDIOC_S_PARM);
    printf("VIDIOC_G_PARM %lu\n", (unsigned long)VIDIOC_G_PARM);
    printf("VIDIOC_G_FMT %lu\n", (unsigned long)VIDIOC_G_FMT);
    printf("VIDIOC_TRY_FMT %lu\n", (unsigned long)VIDIOC_TRY_FMT);
    printf("VIDIOC_ENUM_FMT %lu\n", (unsigned long)VIDIOC_ENUM_FMT);
    printf("VIDIOC_ENUM_FRAMESIZES %lu\n", (unsigned long)VIDIOC_ENUM_FRAMESIZES);
    printf("VIDIOC_ENUM_FRAMEINTERVALS %lu\n", (unsigned long)VIDIOC_ENUM_FRAMEINTERVALS);
    printf("sizeof_v4l2_fmtdesc %zu\n", sizeof(struct v4l2_fmtdesc));
    printf("sizeof_v4l2_frmsizeenum %zu\n", sizeof(struct v4l2_frmsizeenum));
    printf("sizeof_v4l2_frmivalenum %zu\n", sizeof(struct v4l2_frmivalenum));
    return 0;
}
