"""Lightning's `trainer.connectors` import path. Lightning splits the trainer's work into connector objects; fastlight
keeps each concept in one place and names it here where users and tests reach for it."""
