/* cmd_compute.c - being written. */
typedef int dl_placeholder_cmd_compute;
