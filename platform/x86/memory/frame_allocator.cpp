// placeholder: written by the memory work
