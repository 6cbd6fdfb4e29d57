"""What a person reads: terminal and TensorBoard events (`reporter`), tree pictures (`draw`),
the comparison report of several runs (`evaluation_report`)."""
