/* Integration tests of libringmq against a real broker. */
int main(void);

int
main(void)
{
	return 0;
}
