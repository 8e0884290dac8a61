/* Crash test: kill -9 the broker under load, then check. */
int main(void);

int
main(void)
{
	return 0;
}
