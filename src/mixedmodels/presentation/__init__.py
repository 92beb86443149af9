"""What users call and see: the entry points ``lmer``/``glmer`` (:mod:`.api`), the printed
summary (:mod:`.results`), plots (:mod:`.plots`), the command line (:mod:`.cli`), the guides
(:mod:`.guide`) and the bundled data (:mod:`.datasets`)."""
