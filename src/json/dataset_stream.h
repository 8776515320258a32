/*
 * dataset_stream.h - data sets read from a token stream (dataset_stream.c):
 * the common format and COCO instances files, with the tree reader's checks
 * and messages (dataset.c) in its order of priority.
 */
#ifndef DETLOSS_DATASET_STREAM_H
#define DETLOSS_DATASET_STREAM_H

#include "detloss/detloss_json.h"
#include "json/jstream.h"

/* Reads one data set from j (opened, nothing read yet) into ds (zeroed
 * first; cleared again on error). Errors name "<file>: <JSON path>" or
 * "<file>: line L, column C". The limits on image sides are the caller's. */
detloss_status dl_dataset_stream(dljs *j, detloss_dataset *ds, detloss_error *err);

#endif /* DETLOSS_DATASET_STREAM_H */
