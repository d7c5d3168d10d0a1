"""Tiny datasets in the real on-disk formats, generated on the fly.

ImageNet-style class folders, COCO (json + images) and Cityscapes
(``leftImg8bit`` / ``gtFine`` with ``*_labelTrainIds.png``). Images carry a
little structure (class-coloured squares) so a few iterations see real
gradients, but nothing here is meant to be learned.
"""
import json
import os

import numpy as np
from PIL import Image

COCO_CLASSES = ('person', 'bicycle', 'car')


def _image(rng, height, width, colour=None):
    pixels = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
    if colour is not None:
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        pixels[top:top + height // 2, left:left + width // 2] = colour
    return pixels


def make_imagenet_folders(root, classes=4, per_class=4, size=40, seed=0):
    """``root/train/<class>/<n>.png`` (also used for validation)."""
    rng = np.random.default_rng(seed)
    for label in range(classes):
        folder = os.path.join(root, 'train', f'class_{label}')
        os.makedirs(folder, exist_ok=True)
        colour = (60 * label % 255, 255 - 50 * label, 40 + 50 * label)
        for index in range(per_class):
            Image.fromarray(_image(rng, size, size, colour)).save(
                os.path.join(folder, f'{index}.png'))
    return root


def make_coco(root, images=6, width=128, height=96, seed=0):
    """``root/images/*.jpg`` and ``root/annotations/instances.json``."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, 'images'), exist_ok=True)
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    info = dict(images=[], annotations=[],
                categories=[dict(id=i + 1, name=name) for i, name in enumerate(COCO_CLASSES)])
    for image_id in range(1, images + 1):
        name = f'{image_id:06d}.jpg'
        Image.fromarray(_image(rng, height, width)).save(os.path.join(root, 'images', name))
        info['images'].append(dict(id=image_id, file_name=name, width=width, height=height))
        for _ in range(2):
            w, h = rng.integers(16, 48), rng.integers(16, 40)
            x, y = rng.integers(0, width - w), rng.integers(0, height - h)
            info['annotations'].append(dict(
                id=len(info['annotations']) + 1, image_id=image_id,
                category_id=int(rng.integers(1, len(COCO_CLASSES) + 1)),
                bbox=[int(x), int(y), int(w), int(h)], area=int(w * h), iscrowd=0))
    with open(os.path.join(root, 'annotations', 'instances.json'), 'w') as f:
        json.dump(info, f)
    return root


def make_cityscapes(root, images=4, width=128, height=64, seed=0):
    """``root/leftImg8bit/{train,val}/city/*_leftImg8bit.png`` and the matching
    ``root/gtFine/{train,val}/city/*_gtFine_labelTrainIds.png``."""
    rng = np.random.default_rng(seed)
    for split in ('train', 'val'):
        image_dir = os.path.join(root, 'leftImg8bit', split, 'city')
        label_dir = os.path.join(root, 'gtFine', split, 'city')
        os.makedirs(image_dir, exist_ok=True)
        os.makedirs(label_dir, exist_ok=True)
        for index in range(images):
            stem = f'city_{index:06d}_000019'
            Image.fromarray(_image(rng, height, width)).save(
                os.path.join(image_dir, f'{stem}_leftImg8bit.png'))
            labels = rng.integers(0, 19, (height // 8, width // 8), dtype=np.uint8)
            labels = labels.repeat(8, axis=0).repeat(8, axis=1)
            Image.fromarray(labels).save(
                os.path.join(label_dir, f'{stem}_gtFine_labelTrainIds.png'))
    return root
