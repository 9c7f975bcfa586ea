"""A network as data: what builds it, its config and its layers, so that training, a resumed
training and a logged model build it the same way, the last from a JSON file and its
state_dict, in a process that never trained it.

What builds a network (a class, or a function such as `resnet18_classifier`) names its config
dataclass in `config_class`: MLP, CNN, Captioner, resnet18_classifier."""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable

from torch import nn

if TYPE_CHECKING:  # a type only: a network without a choice of layers needs none of hw4.layers
    from hw4.models.layer_choice import Impl


@dataclass(frozen=True)
class NetSpec:
    net: Callable[..., nn.Module]  # built as net(config), with impl=impl where given, and the build's own arguments
    config: Any  # an instance of net.config_class
    impl: Impl | None = None  # the MLP's and the CNN's layers: torch's or the hand-derived ones

    def build(self, **init: Any) -> nn.Module:
        """The network, its initial weights drawn from torch's generator (seed it first); `init`
        are the builder's arguments that are not the network's shape (resnet18_classifier's
        pretrained state_dict)."""
        layers = {} if self.impl is None else {"impl": self.impl}
        return self.net(self.config, **layers, **init)

    def to_json(self) -> dict[str, Any]:
        return {"class": f"{self.net.__module__}:{self.net.__qualname__}", "config": asdict(self.config), "impl": self.impl}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "NetSpec":
        module, name = data["class"].split(":")
        if not module.startswith("hw4.models."):
            raise ValueError(f"{data['class']!r} is not a network of hw4.models")
        net = getattr(importlib.import_module(module), name)
        return cls(net, net.config_class(**data["config"]), data.get("impl"))
