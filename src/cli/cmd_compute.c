/* cmd_compute.c - `detloss compute FILE|-`: the JSON case contract. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "detloss/detloss_json.h"

static const char HELP[] =
    "usage: detloss compute [--threads N] FILE|-\n"
    "\n"
    "Reads one JSON case object, or an array of cases, from FILE (- for standard\n"
    "input), runs each through the library and writes one JSON result object (or\n"
    "an array, in the same order) to standard output. Numbers are written with\n"
    "9 significant digits (%.9g), so float32 values round-trip.\n"
    "\n"
    "ops: iou, encode, decode, anchors, match, loss, embedding_loss, rpn_loss,\n"
    "     retina_loss, anchor_eval, assign, fcos_loss, yolov8_loss, detr_loss\n"
    "     (fields and semantics: docs/compute-cases.md, the contract)\n"
    "assign methods: task_aligned (semantics ultralytics | tood), hungarian (detr | focal),\n"
    "     atss (mmdet | original), fcos (mmdet | original | torchvision),\n"
    "     simota (mmdet | yolox_0.3 | yolox)\n"
    "\n";

static const char HELP_TAIL[] =
    "\n"
    "options:\n"
    "  --threads N   threads for the library calls (0 = OpenMP default); results\n"
    "                are bitwise identical for any N\n"
    "  -h, --help    show this help\n"
    "\n"
    "limits (environment; docs/limits.md): DETLOSS_MAX_INPUT_BYTES (1 GiB),\n"
    "DETLOSS_MAX_OUTPUT_NUMBERS (16777216 per case), DETLOSS_MAX_ANCHORS (134217728\n"
    "per image), DETLOSS_MAX_IMAGE_SIDE (100000 px). A case past one is refused\n"
    "before it runs (exit 2); a result that is not finite is an error too.\n"
    "\n"
    "A bad case (unknown op, wrong shape, missing field, non-finite number, value\n"
    "out of range, JSON syntax error) prints nothing on standard output and one\n"
    "line on standard error naming the JSON path of the fault, e.g.\n"
    "  detloss: [1].boxes1[3]: expected 4 numbers, got 3\n"
    "\n" DL_EXIT_HELP;

/* The losses of ops loss and embedding_loss with their params and defaults,
 * from the library's registry (detloss_loss_info_get). */
static void print_losses(void) {
  static const char *const FORMS[] = {"element-wise", "class-indexed", "boxes",
                                      "embedding",    "soft rows",     "distribution"};
  fputs("losses (\"loss\": name; \"params\": key default):\n", stdout);
  for (size_t k = 0; k < detloss_loss_count(); k++) {
    const detloss_loss_info *r = detloss_loss_info_get((detloss_loss_kind)k);
    printf("  %-18s %-14s", r->name, FORMS[r->form]);
    for (size_t i = 0; i < r->num_params; i++) {
      const detloss_loss_param *p = &r->params[i];
      printf("%s%s ", i ? ", " : "", p->key);
      if (p->type == DETLOSS_PARAM_FLOATS)
        fputs("none", stdout);
      else if (p->type == DETLOSS_PARAM_BOOL)
        fputs(p->default_value != 0.0 ? "true" : "false", stdout);
      else
        printf("%g", (double)(float)p->default_value);
    }
    fputs(r->num_params ? "\n" : "-\n", stdout);
  }
  fputs("  (embedding losses: op embedding_loss; the others: op loss)\n", stdout);
}

int dl_cmd_compute(int argc, char **argv) {
  const char *path = NULL;
  int threads = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(HELP, stdout);
      print_losses();
      fputs(HELP_TAIL, stdout);
      return DL_EXIT_OK;
    } else if (strcmp(a, "--threads") == 0) {
      if (i + 1 >= argc || (threads = dl_cli_parse_threads(argv[i + 1])) < 0) {
        fprintf(stderr, "detloss: compute: --threads needs a whole number from 0 to 4096\n");
        return DL_EXIT_INPUT;
      }
      i++;
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "detloss: compute: unknown option '%s' (see detloss compute --help)\n", a);
      return DL_EXIT_INPUT;
    } else if (!path) {
      path = a;
    } else {
      fprintf(stderr, "detloss: compute: expected one FILE, got a second: '%s'\n", a);
      return DL_EXIT_INPUT;
    }
  }
  if (!path) {
    fprintf(stderr, "detloss: compute: missing FILE (use - for standard input)\n");
    return DL_EXIT_INPUT;
  }
  detloss_json_limits lim;
  int status = dl_cli_limits(&lim);
  if (status != DL_EXIT_OK) return status;
  /* Read as a stream (detloss_compute_json_file): the text is never held
   * whole and arrays of numbers are packed, so a case of millions of boxes
   * fits in a fraction of the memory its text and a tree would take. */
  FILE *f = dl_cli_open_input(path, &status);
  if (!f) return status;

  detloss_compute_options opt = DETLOSS_COMPUTE_OPTIONS_INIT;
  opt.num_threads = threads;
  opt.limits = &lim;
  detloss_error err;
  char *out = NULL;
  size_t out_len = 0;
  detloss_status st = detloss_compute_json_file(f, path, &out, &out_len, &opt, &err);
  if (f != stdin) fclose(f);
  if (st != DETLOSS_OK) return dl_cli_report(&err, st);
  int rc = dl_cli_write_stdout(out, out_len);
  detloss_free(out);
  return rc;
}
