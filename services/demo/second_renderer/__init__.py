"""A second, independent renderer of the demo's world, for evaluation only: pictures drawn by other code than
training's (`services.demo.drawing`), at other sizes, on other backgrounds, asked in other words, so that
its accuracy says how the demo model does on pictures it was not made from."""
