"""How torchvision's ImageNet-trained backbones take their input: RGB pixels in [0, 1],
normalised per channel by ImageNet's statistics (the transfer stage's loaders and the COCO
feature extraction both feed such backbones)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
