#!/usr/bin/env python3
"""Writes a synthetic COCO instances file of the size of instances_train2017.json.

COCO train2017 has 118,287 images and 860,001 annotations; its instances file
is 448 MB, most of it polygon coordinates (cocodataset.org, "2017 Train
annotations"). This script writes a file with the same counts and layout
(info, licenses, images, annotations with polygon segmentation and, for about
1% crowd annotations, uncompressed RLE, categories), about 450 MB, so that
`detloss eval` can be measured reading it (bench/README.md). The content is
random (seeded): do not commit the output.

usage: gen_coco_instances.py OUT.json [--images N] [--annotations M] [--seed S]
"""
import argparse
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--images", type=int, default=118287)
    ap.add_argument("--annotations", type=int, default=860001)
    ap.add_argument("--seed", type=int, default=2017)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    with open(a.out, "w", encoding="ascii") as f:
        f.write('{"info": {"description": "synthetic COCO-train-sized instances (detloss bench)", '
                '"version": "1.0", "year": 2017, "contributor": "detloss", '
                '"date_created": "2017/09/01"},\n')
        f.write('"licenses": [' + ", ".join(
            '{"url": "http://example.org/%d", "id": %d, "name": "license %d"}' % (i, i, i)
            for i in range(1, 9)) + "],\n")
        f.write('"images": [\n')
        sizes = []
        for i in range(a.images):
            w, h = rng.choice([(640, 480), (480, 640), (640, 427), (500, 375), (640, 360)])
            sizes.append((w, h))
            f.write('%s{"license": %d, "file_name": "%012d.jpg", "coco_url": '
                    '"http://images.cocodataset.org/train2017/%012d.jpg", "height": %d, '
                    '"width": %d, "date_captured": "2013-11-14 11:18:45", "flickr_url": '
                    '"http://farm4.staticflickr.com/%d.jpg", "id": %d}\n'
                    % ("," if i else "", 1 + i % 8, i + 1, i + 1, h, w, i + 1, i + 1))
        f.write('],\n"annotations": [\n')
        for k in range(a.annotations):
            img = rng.randrange(a.images)
            w, h = sizes[img]
            bw = rng.uniform(2, w * 0.9)
            bh = rng.uniform(2, h * 0.9)
            x = rng.uniform(0, w - bw)
            y = rng.uniform(0, h - bh)
            crowd = rng.random() < 0.01
            if crowd:
                runs = [rng.randrange(1, 400) for _ in range(rng.randrange(20, 200))]
                seg = '{"counts": [%s], "size": [%d, %d]}' % (", ".join(map(str, runs)), h, w)
            else:
                n = rng.randrange(6, 41)
                seg = "[[" + ", ".join("%.2f, %.2f" % (x + rng.uniform(0, bw), y + rng.uniform(0, bh))
                                       for _ in range(n)) + "]]"
            f.write('%s{"segmentation": %s, "area": %.4f, "iscrowd": %d, "image_id": %d, '
                    '"bbox": [%.2f, %.2f, %.2f, %.2f], "category_id": %d, "id": %d}\n'
                    % ("," if k else "", seg, bw * bh * 0.6, crowd, img + 1, x, y, bw, bh,
                       1 + k % 80, k + 1))
        f.write('],\n"categories": [' + ", ".join(
            '{"supercategory": "thing", "id": %d, "name": "class %d"}' % (c, c)
            for c in range(1, 81)) + "]}\n")


if __name__ == "__main__":
    main()
