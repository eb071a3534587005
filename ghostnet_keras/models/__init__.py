"""The model families: one module per family, with its variants, stage table and builder.

`ghostnet` (GhostNet v1 and the shared builder), `ghostnet_v2v3` (GhostNetV2/V3 constructors),
`ghost_resnet` (Ghost-ResNet-50), `cifar` (Ghost-VGG-16 / Ghost-ResNet-56), `ghostify` (any
Keras model's convolutions as Ghost modules), `reparameterize` (GhostNetV3's deploy form) and
`arguments` (the keras.applications argument checks they share).
"""
