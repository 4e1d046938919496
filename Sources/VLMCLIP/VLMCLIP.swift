// VLMCLIP: placeholder until its issue lands.
