/* The exec target of the storm: a static binary that exits at once. */
int main(void) { return 0; }
